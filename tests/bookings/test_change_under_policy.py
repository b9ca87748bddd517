"""A guest who makes a paid stay cheaper close to arrival gets back what the policy refunds.

The part given up is treated as a cancellation of that part: the cancellation policy's fee
for it is kept (``Booking.retained_amount``, part of the total and the ledger), the rest is
refunded. Far from arrival, or when the manager makes the change, nothing is kept.
"""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from bookings.choices import RefundStatus
from bookings.models import Payment, Refund
from bookings.services import (
    booking_cancel,
    booking_create,
    booking_modify,
    guest_token_issue,
    payment_mark_received,
    refund_mark_completed,
)
from tests.bookings.test_ledger import deliver_all, expected_balance, ledger_balance
from tests.factories import PropertyFactory

pytestmark = pytest.mark.django_db


def _paid_stay(alice, *, days_ahead: int, nights: int = 4, policy: str = "moderate"):
    prop = PropertyFactory.create(tenant=alice.tenant, cancellation_policy=policy)
    check_in = timezone.localdate() + timedelta(days=days_ahead)
    booking = booking_create(
        tenant=alice.tenant,
        property=prop,
        guest=alice.guest,
        check_in=check_in,
        check_out=check_in + timedelta(days=nights),
    )
    deliver_all(random.Random(1))
    payment_mark_received(payment=Payment.objects.get(booking=booking))
    deliver_all(random.Random(2))
    booking.refresh_from_db()
    return booking


def _guest_api(booking) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {guest_token_issue(booking=booking)}")
    return client


def _settled(booking):
    deliver_all(random.Random(3))
    for refund in Refund.objects.filter(booking=booking, status=RefundStatus.PENDING):
        refund_mark_completed(refund=refund)
    deliver_all(random.Random(4))
    booking.refresh_from_db()
    assert ledger_balance(booking) == expected_balance(booking)


def test_shortening_close_to_arrival_keeps_the_policys_part_and_refunds_the_rest(alice):
    booking = _paid_stay(alice, days_ahead=3)  # moderate: 50 % refund within 5 days
    paid = booking.total
    guest = _guest_api(booking)
    url = f"/api/v1/bookings/{booking.reference}/change/"
    stay = {
        "check_in": booking.check_in.isoformat(),
        "check_out": (booking.check_in + timedelta(days=2)).isoformat(),
        "guests": 1,
    }
    preview = guest.get(url, stay).json()
    price_of_two_nights = Decimal(preview["total"]) - Decimal(preview["retained"])
    reduction = paid - price_of_two_nights
    assert Decimal(preview["retained"]) == (reduction / 2).quantize(Decimal("0.01"))
    assert Decimal(preview["to_refund"]) == reduction - Decimal(preview["retained"])
    assert preview["lines"][-1]["code"] == "retained"

    changed = guest.post(url, {**stay, "expected_total": preview["total"]}, format="json")
    assert changed.status_code == 200, changed.json()
    booking.refresh_from_db()
    assert booking.total == Decimal(preview["total"])
    assert booking.retained_amount == Decimal(preview["retained"])
    assert booking.price_lines[-1]["code"] == "retained"
    _settled(booking)
    assert Refund.objects.get(booking=booking).amount == Decimal(preview["to_refund"])


def test_shortening_far_from_arrival_refunds_the_whole_difference(alice):
    booking = _paid_stay(alice, days_ahead=30)
    preview = (
        _guest_api(booking)
        .get(
            f"/api/v1/bookings/{booking.reference}/change/",
            {
                "check_in": booking.check_in.isoformat(),
                "check_out": (booking.check_in + timedelta(days=2)).isoformat(),
                "guests": 1,
            },
        )
        .json()
    )
    assert preview["retained"] == "0.00"
    assert Decimal(preview["to_refund"]) == booking.total - Decimal(preview["total"])


def test_the_managers_change_keeps_nothing_however_late(alice):
    booking = _paid_stay(alice, days_ahead=2, policy="strict")
    changed = booking_modify(
        booking=booking, check_in=booking.check_in, check_out=booking.check_in + timedelta(days=1)
    )
    assert changed.retained_amount == 0
    _settled(changed)
    assert Refund.objects.get(booking=booking).amount == booking.total - changed.total


def test_what_a_change_kept_stays_kept_when_the_stay_grows_or_is_cancelled(alice):
    booking = _paid_stay(alice, days_ahead=3)
    shorter = booking_modify(
        booking=booking,
        check_in=booking.check_in,
        check_out=booking.check_in + timedelta(days=2),
        under_policy=True,
    )
    kept = shorter.retained_amount
    assert kept > 0
    longer = booking_modify(
        booking=shorter,
        check_in=booking.check_in,
        check_out=booking.check_in + timedelta(days=5),
        under_policy=True,
    )
    assert longer.retained_amount == kept and longer.total > booking.total
    cancelled = booking_cancel(booking=longer)
    # Moderate, 3 days ahead: half of the stay's price, and what the change kept.
    half = ((longer.total - kept) / 2).quantize(Decimal("0.01"))
    assert cancelled.cancellation_fee == half + kept
    _settled(cancelled)


def test_the_guest_page_says_what_the_policy_keeps_before_confirming(client, alice):
    booking = _paid_stay(alice, days_ahead=3)
    token = guest_token_issue(booking=booking)
    client.get(f"/stay/{booking.reference}/", {"token": token})
    page = client.post(
        f"/stay/{booking.reference}/change/",
        {
            "check_in": booking.check_in.isoformat(),
            "check_out": (booking.check_in + timedelta(days=2)).isoformat(),
            "guests": 1,
        },
    )
    html = page.content.decode()
    assert 'id="retained-now"' in html and "the cancellation policy keeps" in html
    assert "Kept under the cancellation policy" in html
