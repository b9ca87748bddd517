"""Admin lifecycle actions go through the booking services and emit events."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bookings.choices import BookingStatus
from bookings.services import booking_create
from pms.models import DomainEvent
from tests.factories import PASSWORD
from tests.support.admin_forms import change_form_data

pytestmark = pytest.mark.django_db


@pytest.fixture
def booking(alice, future):
    return booking_create(
        tenant=alice.tenant,
        property=alice.property,
        guest=alice.guest,
        check_in=future,
        check_out=future + timedelta(days=2),
        status=BookingStatus.REQUESTED,
    )


def _action(client, name, booking):
    return client.post(
        "/admin/bookings/booking/", {"action": name, "_selected_action": [booking.pk]}
    )


def test_confirm_then_cancel_from_the_admin_emits_one_event_each(client, alice, booking):
    client.login(username=alice.manager.username, password=PASSWORD)
    _action(client, "confirm_selected", booking)
    _action(client, "cancel_selected", booking)
    booking.refresh_from_db()
    assert booking.status == BookingStatus.CANCELLED
    events = list(
        DomainEvent.objects.filter(aggregate_id=str(booking.pk)).values_list(
            "event_type", "sequence", "actor"
        )
    )
    actor = f"admin:{alice.manager.username}"
    assert events == [
        ("booking.created", 1, ""),
        ("booking.confirmed", 2, actor),
        ("booking.cancelled", 3, actor),
    ]


def test_an_illegal_transition_is_refused_with_a_message_not_an_error(client, alice, booking):
    client.login(username=alice.manager.username, password=PASSWORD)
    response = _action(client, "check_out_selected", booking)
    assert response.status_code == 302
    messages = [str(m) for m in response.wsgi_request._messages]
    assert any("cannot become checked out" in m for m in messages)
    booking.refresh_from_db()
    assert booking.status == BookingStatus.REQUESTED


def test_changing_dates_in_the_admin_is_a_modification_event(client, alice, booking, future):
    client.login(username=alice.manager.username, password=PASSWORD)
    url = f"/admin/bookings/booking/{booking.pk}/change/"
    response = client.post(
        url,
        change_form_data(
            client,
            url,
            check_in=(future + timedelta(days=5)).isoformat(),
            check_out=(future + timedelta(days=8)).isoformat(),
            guests_count=2,
        ),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    booking.refresh_from_db()
    assert booking.check_in == future + timedelta(days=5) and booking.nights == 3
    modified = DomainEvent.objects.get(aggregate_id=str(booking.pk), event_type="booking.modified")
    assert modified.payload["previous"]["check_in"] == future.isoformat()


def test_the_calendar_grid_shows_booked_days(client, alice, booking):
    from bookings.handlers import calendar_apply_booking_event

    for event in DomainEvent.objects.filter(aggregate_id=str(booking.pk)):
        calendar_apply_booking_event(event)
    client.login(username=alice.manager.username, password=PASSWORD)
    url = f"/admin/bookings/booking/property/{alice.property.pk}/calendar/"
    body = client.get(url, {"month": f"{booking.check_in:%Y-%m}"}).content.decode()
    assert f'data-date="{booking.check_in:%Y-%m-%d}" data-status="booked"' in body
    assert f'data-date="{booking.check_out:%Y-%m-%d}" data-status="available"' in body
    assert booking.reference in body
