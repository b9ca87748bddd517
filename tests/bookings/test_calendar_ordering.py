"""The calendar ends as the in-order sequence would leave it, whatever the delivery order."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bookings.choices import OCCUPYING_STATUSES
from bookings.models import CalendarEntry
from bookings.services import booking_cancel, booking_create, booking_modify
from pms.models import EventDelivery
from pms.pipeline.delivery import run_delivery
from pms.pipeline.registry import get_handler
from tests.factories import PropertyFactory

history = st.fixed_dictionaries(
    {
        "moves": st.lists(st.tuples(st.integers(0, 60), st.integers(1, 9)), max_size=4),
        "cancel": st.booleans(),
    }
)


@pytest.mark.django_db
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=history, data=st.data())
def test_shuffled_and_repeated_deliveries_leave_the_newest_state(alice, future, plan, data) -> None:
    prop = PropertyFactory.create(tenant=alice.tenant)  # a fresh property per example: no overlaps
    booking = booking_create(
        tenant=alice.tenant,
        property=prop,
        guest=alice.guest,
        check_in=future,
        check_out=future + timedelta(days=3),
    )
    for offset, nights in plan["moves"]:
        start = future + timedelta(days=offset)
        booking = booking_modify(
            booking=booking, check_in=start, check_out=start + timedelta(days=nights)
        )
    if plan["cancel"]:
        booking = booking_cancel(booking=booking)

    # Outer test transaction never commits, so nothing was published: deliver by hand.
    deliveries = list(
        EventDelivery.objects.filter(
            event__aggregate_id=str(booking.pk), handler="bookings.calendar"
        )
    )
    order = data.draw(st.permutations([d.pk for d in deliveries]))
    repeats = data.draw(st.lists(st.sampled_from([d.pk for d in deliveries]), max_size=5))
    handler = get_handler("bookings.calendar")
    assert handler is not None
    for delivery_id in [*order, *repeats]:
        run_delivery(handler, delivery_id)

    entry = CalendarEntry.objects.get(booking=booking)
    assert (entry.start, entry.end) == (booking.check_in, booking.check_out)
    assert entry.active == (booking.status in OCCUPYING_STATUSES)
    assert entry.sequence == len(deliveries)
    assert EventDelivery.objects.filter(
        pk__in=[d.pk for d in deliveries], status="done"
    ).count() == len(deliveries)
