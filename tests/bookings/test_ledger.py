"""The accounting ledger: exactly once, and always summing to what the guest owes."""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bookings.choices import BookingStatus, LedgerKind, PaymentStatus, RefundStatus
from bookings.events import (
    BOOKING_CANCELLED,
    BOOKING_CREATED,
    BOOKING_MODIFIED,
    PAYMENT_RECEIVED,
    REFUND_COMPLETED,
)
from bookings.models import Booking, LedgerEntry, Payment, Refund
from bookings.services import (
    booking_cancel,
    booking_create,
    booking_modify,
    payment_mark_received,
    payment_request,
    refund_mark_completed,
)
from pms.choices import DeliveryStatus
from pms.models import DomainEvent, EventDelivery
from pms.pipeline.delivery import run_delivery
from pms.pipeline.registry import get_handler
from tests.factories import PropertyFactory

MONEY_HANDLERS = ("bookings.accounting", "bookings.refunds", "bookings.payment_request")
# Modifications re-price and the money follows them (bookings.services.payments_settle).


def deliver_all(rng: random.Random) -> None:
    """Apply every pending money delivery, shuffled, each possibly twice, until none is left.

    Handlers emit further events (a payment request, a refund), hence the loop.
    """
    while True:
        pending = list(
            EventDelivery.objects.filter(
                status=DeliveryStatus.PENDING, handler__in=MONEY_HANDLERS
            ).values_list("pk", "handler")
        )
        if not pending:
            return
        runs = pending + rng.sample(pending, k=len(pending) // 2)  # redeliveries
        rng.shuffle(runs)
        for delivery_id, name in runs:
            handler = get_handler(name)
            assert handler is not None
            run_delivery(handler, delivery_id)


def expected_balance(booking: Booking) -> Decimal:
    booking.refresh_from_db()
    if booking.status == BookingStatus.CANCELLED:
        from pms.models import DomainEvent

        cancel = DomainEvent.objects.get(
            aggregate_id=str(booking.pk), aggregate_type="booking", event_type="booking.cancelled"
        )
        charges = Decimal(cancel.payload["cancellation"]["fee"])
    else:
        charges = booking.total
    paid = booking.payments.filter(status=PaymentStatus.RECEIVED).aggregate(s=Sum("amount"))["s"]
    refunded = booking.refunds.filter(status=RefundStatus.COMPLETED).aggregate(s=Sum("amount"))["s"]
    return charges - (paid or Decimal(0)) + (refunded or Decimal(0))


class LedgerModel:
    """What the ledger should hold per event, worked out from the bookings, payments and
    refunds themselves (never from the events' payloads the handler books from)."""

    def __init__(self, tenant_id: int) -> None:
        self.tenant_id = tenant_id
        self.expected: dict[str, dict[str, Decimal]] = {}
        self.seen = self._event_ids()

    def _event_ids(self) -> set[str]:
        ids = DomainEvent.objects.filter(tenant_id=self.tenant_id).values_list("id", flat=True)
        return {str(event_id) for event_id in ids}

    def book(self, event_type: str, lines: dict[str, Decimal], *, always: bool = True) -> None:
        """The one new event of ``event_type`` since the last call books ``lines``.

        ``always``: the operation must have emitted it (a change to the same dates may not).
        """
        now = self._event_ids()
        fresh = DomainEvent.objects.filter(
            id__in=now - self.seen, event_type=event_type
        ).values_list("id", flat=True)
        self.seen = now
        assert len(fresh) == 1 or (not always and not fresh), f"{len(fresh)} {event_type} events"
        for event_id in fresh:
            self.expected[str(event_id)] = {k: v for k, v in lines.items() if v != 0}

    def skip(self) -> None:
        """Events since the last call that book nothing (requests, automatic payments)."""
        self.seen = self._event_ids()

    def differences(self, booking: Booking) -> dict[str, tuple[object, object]]:
        held: dict[str, dict[str, Decimal]] = {}
        for entry in LedgerEntry.objects.filter(booking=booking):
            lines = held.setdefault(str(entry.event_id), {})
            assert entry.kind not in lines, "booked twice"
            lines[entry.kind] = entry.amount
        expected = {event: lines for event, lines in self.expected.items() if lines}
        return {
            event: (expected.get(event), held.get(event))
            for event in expected.keys() | held.keys()
            if expected.get(event) != held.get(event)
        }


def charges(booking: Booking) -> dict[str, Decimal]:
    booking.refresh_from_db()
    return {
        LedgerKind.ACCOMMODATION: booking.accommodation_amount,
        LedgerKind.CLEANING: booking.cleaning_amount,
        LedgerKind.TAX: booking.tax_amount,
    }


def ledger_balance(booking: Booking) -> Decimal:
    return LedgerEntry.objects.filter(booking=booking).aggregate(s=Sum("amount"))["s"] or Decimal(0)


operations = st.lists(
    st.one_of(
        # (start in days from tomorrow, nights, asked by the guest: the policy keeps its part)
        st.tuples(st.just("modify"), st.integers(0, 40), st.integers(1, 10), st.booleans()),
        st.tuples(st.just("pay"), st.integers(1, 900)),
        st.tuples(st.just("pay_requested")),
        st.tuples(st.just("cancel")),
        st.tuples(st.just("complete_refunds")),
        st.tuples(st.just("deliver")),
    ),
    max_size=8,
)


@pytest.mark.django_db
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    ops=operations,
    seed=st.integers(0, 10_000),
    policy=st.sampled_from(["flexible", "moderate", "strict"]),
)
def test_ledger_equals_the_balance_for_any_sequence_with_redeliveries(
    alice, future, ops, seed, policy
):
    rng = random.Random(seed)
    tomorrow = timezone.localdate() + timedelta(days=1)
    prop = PropertyFactory.create(
        tenant=alice.tenant, tax_rate=Decimal("7.50"), cancellation_policy=policy
    )
    model = LedgerModel(alice.tenant.pk)
    booking = booking_create(
        tenant=alice.tenant,
        property=prop,
        guest=alice.guest,
        source="direct",
        # From tomorrow on: close to arrival every policy keeps part of what is given up.
        check_in=tomorrow + timedelta(days=rng.randint(0, 20)),
        check_out=tomorrow + timedelta(days=rng.randint(21, 25)),
    )
    model.book(BOOKING_CREATED, charges(booking))
    for op in ops:
        booking.refresh_from_db()
        active = booking.status != BookingStatus.CANCELLED
        if op[0] == "modify" and active:
            start = tomorrow + timedelta(days=op[1])
            before = charges(booking)
            booking = booking_modify(
                booking=booking,
                check_in=start,
                check_out=start + timedelta(days=op[2]),
                under_policy=op[3],
            )
            after = charges(booking)
            lines = {k: after[k] - before[k] for k in after}
            model.book(BOOKING_MODIFIED, lines, always=False)
        elif op[0] == "pay":
            payment = payment_request(booking=booking, amount=Decimal(op[1]))
            model.skip()
            payment_mark_received(payment=payment)
            model.book(PAYMENT_RECEIVED, {LedgerKind.PAYMENT: -payment.amount})
        elif op[0] == "pay_requested":
            deliver_all(rng)  # the automatic request exists once its delivery ran
            model.skip()
            for payment in Payment.objects.filter(booking=booking, status=PaymentStatus.PENDING):
                payment_mark_received(payment=payment)
                model.book(PAYMENT_RECEIVED, {LedgerKind.PAYMENT: -payment.amount})
        elif op[0] == "cancel" and active:
            before = charges(booking)
            booking = booking_cancel(booking=booking)
            booking.refresh_from_db()
            lines = {k: -amount for k, amount in before.items()}
            lines[LedgerKind.CANCELLATION_FEE] = booking.cancellation_fee or Decimal(0)
            model.book(BOOKING_CANCELLED, lines)
        elif op[0] == "complete_refunds":
            deliver_all(rng)
            model.skip()
            for refund in Refund.objects.filter(booking=booking, status=RefundStatus.PENDING):
                refund_mark_completed(refund=refund)
                model.book(REFUND_COMPLETED, {LedgerKind.REFUND: refund.amount})
        elif op[0] == "deliver":
            deliver_all(rng)
            model.skip()
    deliver_all(rng)
    model.skip()

    assert ledger_balance(booking) == expected_balance(booking)
    booking.refresh_from_db()
    if booking.status != BookingStatus.CANCELLED:
        # The money followed every change: what the guest paid or is asked to pay, less
        # what was (or is being) refunded, is the booking's total.
        asked = Payment.objects.filter(
            booking=booking, status__in=[PaymentStatus.RECEIVED, PaymentStatus.PENDING]
        ).aggregate(s=Sum("amount"))["s"] or Decimal(0)
        refunded = Refund.objects.filter(booking=booking).aggregate(s=Sum("amount"))["s"]
        assert asked - (refunded or Decimal(0)) == booking.total
    # Per event, however often and in whatever order it was delivered: exactly the lines
    # the model worked out from the booking, its payments and refunds.
    assert model.differences(booking) == {}


@pytest.mark.django_db
def test_a_cancelled_paid_booking_refunds_down_to_the_policy_fee(alice, future):
    prop = PropertyFactory.create(tenant=alice.tenant, cancellation_policy="strict")
    check_in = future  # 30 days ahead: strict refunds 100%
    booking = booking_create(
        tenant=alice.tenant,
        property=prop,
        guest=alice.guest,
        source="direct",
        check_in=check_in,
        check_out=check_in + timedelta(days=2),
    )
    rng = random.Random(1)
    deliver_all(rng)
    payment = Payment.objects.get(booking=booking)
    assert payment.amount == booking.total and payment.provider_reference.startswith("PMS-")
    payment_mark_received(payment=payment)
    booking_cancel(booking=booking)
    deliver_all(rng)
    refund = Refund.objects.get(booking=booking)
    assert refund.amount == booking.total  # 30 days before: full refund
    refund_mark_completed(refund=refund)
    deliver_all(rng)
    assert ledger_balance(booking) == 0
    kinds = set(LedgerEntry.objects.filter(booking=booking).values_list("kind", flat=True))
    assert {"accommodation", "cleaning", "payment", "refund"} <= kinds
