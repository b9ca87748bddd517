"""A change of dates or guests re-prices, and the money follows: a higher total asks for the
difference, a lower one cancels what is not owed any more or refunds what was paid above it."""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal

import pytest

from bookings.choices import PaymentStatus, RefundStatus
from bookings.models import Payment, Refund
from bookings.services import (
    booking_create,
    booking_modify,
    payment_mark_received,
    payments_settle,
    refund_mark_completed,
)
from pms.models import DomainEvent
from tests.bookings.test_ledger import deliver_all, expected_balance, ledger_balance
from tests.factories import PropertyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def rng():
    return random.Random(7)


def _book(alice, future, nights, *, source="direct"):
    prop = PropertyFactory.create(tenant=alice.tenant, tax_rate=Decimal("7.50"))
    return booking_create(
        tenant=alice.tenant,
        property=prop,
        guest=alice.guest,
        source=source,
        check_in=future,
        check_out=future + timedelta(days=nights),
    )


def _payments(booking, status):
    return list(
        Payment.objects.filter(booking=booking, status=status)
        .order_by("pk")
        .values_list("amount", flat=True)
    )


def _change_nights(booking, nights):
    return booking_modify(
        booking=booking, check_in=booking.check_in, check_out=booking.check_in + timedelta(nights)
    )


def test_a_longer_stay_asks_for_the_difference_only(alice, future, rng):
    booking = _book(alice, future, 2)
    deliver_all(rng)
    first_total = booking.total
    payment_mark_received(payment=Payment.objects.get(booking=booking))
    booking = _change_nights(booking, 4)
    deliver_all(rng)
    assert booking.total > first_total
    assert _payments(booking, PaymentStatus.PENDING) == [booking.total - first_total]
    requested = DomainEvent.objects.filter(event_type="payment.requested").count()
    assert requested == 2  # the stay, then the difference: the guest is emailed each


def test_a_shorter_stay_already_paid_refunds_the_difference(alice, future, rng):
    booking = _book(alice, future, 5)
    deliver_all(rng)
    paid = booking.total
    payment_mark_received(payment=Payment.objects.get(booking=booking))
    deliver_all(rng)
    booking = _change_nights(booking, 2)
    deliver_all(rng)
    refund = Refund.objects.get(booking=booking)
    assert refund.amount == paid - booking.total
    assert "stay changed" in refund.reason
    refund_mark_completed(refund=refund)
    deliver_all(rng)
    assert ledger_balance(booking) == expected_balance(booking) == 0


def test_a_shorter_stay_not_paid_yet_replaces_the_request(alice, future, rng):
    booking = _book(alice, future, 5)
    deliver_all(rng)
    five_nights = booking.total
    booking = _change_nights(booking, 2)
    deliver_all(rng)
    # The old request would have the guest pay for five nights: it is cancelled, and the
    # new total is asked for instead (with its own instructions email).
    assert _payments(booking, PaymentStatus.CANCELLED) == [five_nights]
    assert _payments(booking, PaymentStatus.PENDING) == [booking.total]
    cancelled = DomainEvent.objects.get(event_type="payment.cancelled")
    assert cancelled.payload["reason"].startswith("the stay changed")
    assert not Refund.objects.filter(booking=booking).exists()


def test_money_received_above_the_total_is_refunded(alice, future, rng):
    booking = _book(alice, future, 2)
    deliver_all(rng)
    request = Payment.objects.get(booking=booking)
    payment_mark_received(payment=request)
    extra = Payment.objects.create(
        tenant=alice.tenant, booking=booking, amount=Decimal("40"), currency=booking.currency
    )
    payment_mark_received(payment=extra)  # the guest paid twice, in part
    deliver_all(rng)
    assert [r.amount for r in Refund.objects.filter(booking=booking)] == [Decimal("40")]


def test_settling_again_changes_nothing(alice, future, rng):
    booking = _book(alice, future, 3)
    deliver_all(rng)
    booking = _change_nights(booking, 6)
    deliver_all(rng)
    before = list(Payment.objects.order_by("pk").values_list("pk", "amount", "status"))
    for _ in range(3):
        payments_settle(booking_id=booking.pk)
    assert list(Payment.objects.order_by("pk").values_list("pk", "amount", "status")) == before
    assert sum(_payments(booking, PaymentStatus.PENDING)) == booking.total


def test_a_channel_booking_is_paid_through_the_channel(alice, future, rng):
    booking = _book(alice, future, 3, source="airbnb")
    deliver_all(rng)
    _change_nights(booking, 5)
    deliver_all(rng)
    assert not Payment.objects.filter(booking=booking).exists()
    assert not Refund.objects.filter(booking=booking, status=RefundStatus.PENDING).exists()
