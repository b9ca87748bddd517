"""No double booking: refused by the service, the admin form and the database itself."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction

from bookings.choices import BookingStatus
from bookings.errors import BookingError
from bookings.models import Booking
from bookings.services import booking_cancel, booking_create
from tests.factories import PASSWORD


def _book(world, check_in, nights=3, **kwargs):
    return booking_create(
        tenant=world.tenant,
        property=world.property,
        guest=world.guest,
        check_in=check_in,
        check_out=check_in + timedelta(days=nights),
        **kwargs,
    )


def test_overlapping_booking_is_refused_with_a_clear_error(alice, future) -> None:
    _book(alice, future)
    with pytest.raises(BookingError) as excinfo:
        _book(alice, future + timedelta(days=2))
    assert excinfo.value.code == "unavailable"
    assert "overlap" in str(excinfo.value)


def test_back_to_back_bookings_are_accepted(alice, future) -> None:
    first = _book(alice, future, nights=3)
    second = _book(alice, first.check_out, nights=2)  # check-in on the previous check-out day
    assert second.check_in == first.check_out


def test_the_database_refuses_an_overlap_that_bypasses_the_service(alice, future) -> None:
    first = _book(alice, future)
    clone = Booking(
        tenant=alice.tenant,
        property=alice.property,
        guest=alice.guest,
        reference="RAWINSERT",
        check_in=first.check_in + timedelta(days=1),
        check_out=first.check_out + timedelta(days=1),
        status=BookingStatus.CONFIRMED,
    )
    with pytest.raises(IntegrityError, match="booking_no_double_booking"), transaction.atomic():
        clone.save()


def test_cancelled_booking_frees_the_dates(alice, future) -> None:
    first = _book(alice, future)
    booking_cancel(booking=first, reason="guest changed plans")
    again = _book(alice, future)
    assert again.status == BookingStatus.CONFIRMED


def test_same_dates_on_another_property_are_fine(alice, future) -> None:
    from tests.factories import PropertyFactory

    _book(alice, future)
    other = PropertyFactory.create(tenant=alice.tenant)
    booking_create(
        tenant=alice.tenant,
        property=other,
        guest=alice.guest,
        check_in=future,
        check_out=future + timedelta(days=3),
    )


@pytest.mark.parametrize(
    ("nights", "guests", "code"),
    [(0, 1, "invalid_dates"), (2, 9, "too_many_guests")],
)
def test_invalid_stays_are_refused_with_a_stable_code(alice, future, nights, guests, code) -> None:
    with pytest.raises(BookingError) as excinfo:
        _book(alice, future, nights=nights, guests_count=guests)
    assert excinfo.value.code == code


def test_a_property_of_another_tenant_cannot_be_booked(alice, bob, future) -> None:
    with pytest.raises(BookingError):
        booking_create(
            tenant=alice.tenant,
            property=bob.property,
            guest=alice.guest,
            check_in=future,
            check_out=future + timedelta(days=2),
        )


def test_admin_form_shows_the_overlap_as_a_form_error(client, alice, future) -> None:
    _book(alice, future)
    client.login(username=alice.manager.username, password=PASSWORD)
    response = client.post(
        "/admin/bookings/booking/add/",
        {
            "tenant": alice.tenant.pk,
            "property": alice.property.pk,
            "guest": alice.guest.pk,
            "check_in": (future + timedelta(days=1)).isoformat(),
            "check_out": (future + timedelta(days=4)).isoformat(),
            "guests_count": 2,
            "source": "admin",
            "external_reference": "",
        },
    )
    assert response.status_code == 200
    assert "These dates overlap another booking of this property." in response.content.decode()
    assert Booking.objects.count() == 1


def test_admin_creates_a_booking_through_the_service(client, alice, future) -> None:
    client.login(username=alice.manager.username, password=PASSWORD)
    response = client.post(
        "/admin/bookings/booking/add/",
        {
            "tenant": alice.tenant.pk,
            "property": alice.property.pk,
            "guest": alice.guest.pk,
            "check_in": future.isoformat(),
            "check_out": (future + timedelta(days=2)).isoformat(),
            "guests_count": 2,
            "source": "admin",
            "external_reference": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    booking = Booking.objects.get()
    assert (
        booking.reference
        and booking.total == 2 * alice.property.nightly_rate + alice.property.cleaning_fee
    )
    from pms.models import DomainEvent

    event = DomainEvent.objects.get(aggregate_id=str(booking.pk))
    assert (
        event.event_type == "booking.created" and event.actor == f"admin:{alice.manager.username}"
    )
