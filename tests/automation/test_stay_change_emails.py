"""The guest hears of every change and cancellation of their stay, whoever made it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from automation.choices import TemplateTrigger
from automation.models import MessageTemplate, OutboundMessage
from bookings.services import (
    booking_cancel,
    booking_create,
    booking_modify,
    booking_set_external_reference,
)
from pms.choices import DeliveryStatus
from pms.models import EventDelivery
from pms.pipeline.delivery import run_delivery
from pms.pipeline.registry import get_handler

pytestmark = pytest.mark.django_db

HANDLER = "automation.guest_change_email"


def _deliver() -> None:
    """Run the handler's pending deliveries in this process, each twice (a redelivery)."""
    handler = get_handler(HANDLER)
    assert handler is not None
    pending = EventDelivery.objects.filter(handler=HANDLER, status=DeliveryStatus.PENDING)
    for delivery_id in list(pending.values_list("pk", flat=True)) * 2:
        run_delivery(handler, delivery_id)


def _emails(booking):
    return list(
        OutboundMessage.objects.filter(booking=booking, kind="stay_change")
        .order_by("pk")
        .values_list("subject", "body")
    )


@pytest.fixture
def booking(alice, future):
    return booking_create(
        tenant=alice.tenant,
        property=alice.property,
        guest=alice.guest,
        check_in=future,
        check_out=future + timedelta(days=3),
        source="direct",
    )


def test_new_dates_send_the_guest_one_email_with_the_new_stay_and_link(booking):
    changed = booking_modify(
        booking=booking,
        check_in=booking.check_in,
        check_out=booking.check_in + timedelta(days=5),
        actor=f"guest:{booking.reference}",
    )
    _deliver()
    [(subject, body)] = _emails(booking)
    assert subject == f"Your booking {booking.reference} has changed"
    assert str(changed.check_out) in body and f"{changed.total} EUR" in body
    assert "{guest_link}" in body  # minted when the email is sent


def test_a_new_channel_reference_alone_sends_nothing(booking):
    booking_set_external_reference(booking=booking, external_reference="HM123")
    _deliver()
    assert _emails(booking) == []


def test_a_cancellation_tells_the_guest_the_fee(booking):
    cancelled = booking_cancel(booking=booking, reason="cancelled by the guest")
    _deliver()
    [(subject, body)] = _emails(booking)
    assert subject == f"Your booking {booking.reference} is cancelled"
    assert f"the fee is {cancelled.cancellation_fee} EUR" in body


def test_the_tenants_own_cancellation_template_replaces_the_built_in_email(booking, alice):
    MessageTemplate.objects.create(
        tenant=alice.tenant,
        name="Sorry to see you go",
        trigger=TemplateTrigger.BOOKING_CANCELLED,
        subject="Cancelled",
        body="Hello {{ guest.name }}",
    )
    booking_cancel(booking=booking)
    _deliver()
    assert _emails(booking) == []


def test_channel_bookings_are_the_channels_to_tell(alice, future):
    airbnb = booking_create(
        tenant=alice.tenant,
        property=alice.property,
        guest=alice.guest,
        check_in=future,
        check_out=future + timedelta(days=2),
        source="airbnb",
    )
    booking_cancel(booking=airbnb)
    _deliver()
    assert _emails(airbnb) == []


def _manager_emails(booking):
    return list(
        OutboundMessage.objects.filter(booking=booking, kind="manager_notification")
        .order_by("pk")
        .values_list("subject", "body")
    )


def _deliver_manager() -> None:
    handler = get_handler("automation.manager_booking_email")
    assert handler is not None
    pending = EventDelivery.objects.filter(
        handler="automation.manager_booking_email", status=DeliveryStatus.PENDING
    )
    for delivery_id in list(pending.values_list("pk", flat=True)) * 2:
        run_delivery(handler, delivery_id)


def test_managers_hear_when_a_guest_changes_the_stay_not_when_they_do(booking):
    _deliver_manager()  # the new booking's email
    before = len(_manager_emails(booking))
    booking_modify(
        booking=booking,
        check_in=booking.check_in,
        check_out=booking.check_in + timedelta(days=4),
        actor="admin:alice-manager",
    )
    _deliver_manager()
    assert len(_manager_emails(booking)) == before
    old_out = booking.check_in + timedelta(days=4)
    booking_modify(
        booking=booking,
        check_in=booking.check_in,
        check_out=booking.check_in + timedelta(days=6),
        actor=f"guest:{booking.reference}",
    )
    _deliver_manager()
    subject, body = _manager_emails(booking)[-1]
    assert subject.startswith(f"Guest changed booking {booking.reference}")
    assert f"it was {booking.check_in} to {old_out}" in body
