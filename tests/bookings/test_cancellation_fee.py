"""The cancellation fee is a column of the booking, written with the booking.cancelled event."""

from __future__ import annotations

import importlib
from datetime import timedelta
from decimal import Decimal

import pytest
from django.apps import apps as django_apps
from django.utils import timezone
from rest_framework.test import APIClient

from bookings.models import Booking
from bookings.services import booking_cancel, booking_create, guest_token_issue
from pms.models import DomainEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def booking(alice):
    """Ten days ahead under the strict policy: half the total is refunded, half is the fee."""
    alice.property.cancellation_policy = "strict"
    alice.property.save(update_fields=["cancellation_policy"])
    check_in = timezone.localdate() + timedelta(days=10)
    return booking_create(
        tenant=alice.tenant,
        property=alice.property,
        guest=alice.guest,
        check_in=check_in,
        check_out=check_in + timedelta(days=3),
    )


def _event_fee(booking: Booking) -> Decimal:
    event = DomainEvent.objects.get(aggregate_id=str(booking.pk), event_type="booking.cancelled")
    return Decimal(event.payload["cancellation"]["fee"])


def test_cancelling_writes_the_fee_on_the_booking_as_in_the_event(booking):
    assert booking.cancellation_fee is None

    booking_cancel(booking=booking, reason="plans changed")

    booking.refresh_from_db()
    assert booking.cancellation_fee is not None and booking.cancellation_fee > 0
    assert booking.cancellation_fee == (booking.total / 2).quantize(Decimal("0.01"))
    assert booking.cancellation_fee == _event_fee(booking)


def test_the_guest_api_shows_the_fee_once_the_guest_cancels(booking):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {guest_token_issue(booking=booking)}")
    url = f"/api/v1/bookings/{booking.reference}/"
    assert api.get(url).json()["cancellation_fee"] is None

    response = api.post(f"{url}cancel/")

    assert response.status_code == 200
    booking.refresh_from_db()
    assert Decimal(response.json()["cancellation_fee"]) == booking.cancellation_fee
    assert Decimal(api.get(url).json()["cancellation_fee"]) == _event_fee(booking)


def test_the_admin_shows_the_fee_read_only_and_the_other_tenant_sees_nothing(
    client, alice, bob, booking
):
    booking_cancel(booking=booking)
    booking.refresh_from_db()
    url = f"/admin/bookings/booking/{booking.pk}/change/"

    client.force_login(alice.manager)
    page = client.get(url).content.decode()
    assert "Cancellation fee" in page and str(booking.cancellation_fee) in page
    assert 'name="cancellation_fee"' not in page  # shown, never an input

    client.force_login(bob.manager)
    assert client.get(url).status_code == 404


def test_the_migration_fills_the_fee_of_bookings_cancelled_before_it(alice, booking):
    migration = importlib.import_module("bookings.migrations.0004_booking_cancellation_fee")
    booking_cancel(booking=booking)
    booking.refresh_from_db()
    fee = booking.cancellation_fee
    open_booking = booking_create(
        tenant=alice.tenant,
        property=alice.property,
        guest=alice.guest,
        check_in=booking.check_out + timedelta(days=5),
        check_out=booking.check_out + timedelta(days=7),
    )
    Booking.objects.update(cancellation_fee=None)  # as before the column existed

    migration.backfill_cancellation_fees(django_apps, None)

    booking.refresh_from_db()
    open_booking.refresh_from_db()
    assert booking.cancellation_fee == fee == _event_fee(booking)
    assert open_booking.cancellation_fee is None
