"""The guest API's change and cancellation previews: the figure shown is the figure applied."""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from bookings.choices import BookingStatus, PaymentStatus
from bookings.models import Payment, Refund
from bookings.services import booking_create, guest_token_issue, payment_mark_received
from tests.bookings.test_ledger import deliver_all

pytestmark = pytest.mark.django_db


@pytest.fixture
def booking(alice, future):
    return booking_create(
        tenant=alice.tenant,
        property=alice.property,
        guest=alice.guest,
        check_in=future,
        check_out=future + timedelta(days=4),
    )


@pytest.fixture
def guest(booking) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {guest_token_issue(booking=booking)}")
    return client


def _paid_in_full(booking):
    deliver_all(random.Random(1))
    payment_mark_received(payment=Payment.objects.get(booking=booking))
    deliver_all(random.Random(2))


def _stay(booking, nights, guests=1):
    return {
        "check_in": booking.check_in.isoformat(),
        "check_out": (booking.check_in + timedelta(days=nights)).isoformat(),
        "guests": guests,
    }


def test_a_shorter_stay_paid_in_full_previews_the_refund_it_then_gets(guest, booking):
    _paid_in_full(booking)
    url = f"/api/v1/bookings/{booking.reference}/change/"
    preview = guest.get(url, _stay(booking, 2)).json()
    assert Decimal(preview["previous_total"]) == booking.total
    assert Decimal(preview["paid"]) == booking.total
    assert Decimal(preview["to_refund"]) == booking.total - Decimal(preview["total"]) > 0
    assert preview["to_pay"] == "0.00" and preview["nights"] == 2

    changed = guest.post(
        url, {**_stay(booking, 2), "expected_total": preview["total"]}, format="json"
    )
    assert changed.status_code == 200, changed.json()
    assert changed.json()["nights"] == 2 and changed.json()["total"] == preview["total"]
    deliver_all(random.Random(3))
    assert Refund.objects.get(booking=booking).amount == Decimal(preview["to_refund"])


def test_a_longer_stay_previews_what_remains_to_pay(guest, booking):
    _paid_in_full(booking)
    url = f"/api/v1/bookings/{booking.reference}/change/"
    preview = guest.get(url, _stay(booking, 6)).json()
    assert Decimal(preview["to_pay"]) == Decimal(preview["difference"]) > 0
    assert guest.post(url, _stay(booking, 6), format="json").status_code == 200
    deliver_all(random.Random(4))
    pending = Payment.objects.get(booking=booking, status=PaymentStatus.PENDING)
    assert pending.amount == Decimal(preview["to_pay"])


def test_a_price_that_moved_since_the_preview_changes_nothing(guest, booking):
    url = f"/api/v1/bookings/{booking.reference}/change/"
    response = guest.post(url, {**_stay(booking, 5), "expected_total": "1.00"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "price_changed"
    booking.refresh_from_db()
    assert booking.nights == 4


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"check_in": "2020-01-01", "check_out": "2020-01-03", "guests": 1}, "past_date"),
        ({"check_in": "x", "check_out": "y"}, "invalid"),
        ({"guests": 40}, "too_many_guests"),
    ],
)
def test_bad_changes_are_json_errors_with_a_code(guest, booking, params, code):
    url = f"/api/v1/bookings/{booking.reference}/change/"
    body = {**_stay(booking, 3), **params}
    for response in (guest.get(url, body), guest.post(url, body, format="json")):
        assert response.status_code == 400, response.content
        assert response.json()["error"]["code"] == code


def test_the_cancellation_preview_is_what_cancelling_refunds(guest, booking):
    _paid_in_full(booking)
    url = f"/api/v1/bookings/{booking.reference}/cancel/"
    preview = guest.get(url).json()
    assert preview["refund_percent"] == 100 and preview["refund"] == str(booking.total)
    booking.refresh_from_db()
    assert booking.status == BookingStatus.CONFIRMED
    assert guest.post(url).status_code == 200
    deliver_all(random.Random(5))
    assert Refund.objects.get(booking=booking).amount == Decimal(preview["refund"])


def test_another_bookings_token_previews_nothing(booking, alice, future):
    other = booking_create(
        tenant=alice.tenant,
        property=alice.property,
        guest=alice.guest,
        check_in=future + timedelta(days=20),
        check_out=future + timedelta(days=22),
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {guest_token_issue(booking=other)}")
    assert client.get(f"/api/v1/bookings/{booking.reference}/cancel/").status_code == 404
    response = client.get(f"/api/v1/bookings/{booking.reference}/change/", _stay(booking, 2))
    assert response.status_code == 404


def test_a_stay_booked_on_a_channel_is_changed_there_not_here(alice, future):
    airbnb = booking_create(
        tenant=alice.tenant,
        property=alice.property,
        guest=alice.guest,
        check_in=future,
        check_out=future + timedelta(days=3),
        source="airbnb",
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {guest_token_issue(booking=airbnb)}")
    base = f"/api/v1/bookings/{airbnb.reference}"
    for response in (
        client.get(f"{base}/cancel/"),
        client.post(f"{base}/cancel/"),
        client.get(f"{base}/change/", _stay(airbnb, 2)),
        client.post(f"{base}/change/", _stay(airbnb, 2), format="json"),
    ):
        assert response.status_code == 409, response.content
        assert response.json()["error"]["code"] == "booked_elsewhere"
    airbnb.refresh_from_db()
    assert airbnb.status == BookingStatus.CONFIRMED and airbnb.nights == 3
