"""Admin lifecycle actions go through the booking services and emit events."""

from __future__ import annotations

from datetime import date, timedelta

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


def test_changing_the_external_reference_in_the_admin_leaves_an_event(client, alice, booking):
    client.login(username=alice.manager.username, password=PASSWORD)
    url = f"/admin/bookings/booking/{booking.pk}/change/"
    response = client.post(url, change_form_data(client, url, external_reference="OTA-4711"))
    assert response.status_code == 302, response.content.decode()[:3000]
    booking.refresh_from_db()
    assert booking.external_reference == "OTA-4711"
    modified = DomainEvent.objects.get(aggregate_id=str(booking.pk), event_type="booking.modified")
    assert modified.actor == f"admin:{alice.manager.username}"
    assert modified.payload["external_reference"] == "OTA-4711"
    assert modified.payload["previous"]["external_reference"] == ""
    assert modified.payload["check_in"] == modified.payload["previous"]["check_in"]


def test_a_past_stay_keeps_its_dates_when_only_its_reference_changes(client, alice):
    past = booking_create(
        tenant=alice.tenant,
        property=alice.property,
        guest=alice.guest,
        check_in=date.today() - timedelta(days=30),
        check_out=date.today() - timedelta(days=28),
        allow_past=True,
    )
    client.login(username=alice.manager.username, password=PASSWORD)
    url = f"/admin/bookings/booking/{past.pk}/change/"
    response = client.post(url, change_form_data(client, url, external_reference="OTA-1"))
    assert response.status_code == 302, response.content.decode()[:3000]
    past.refresh_from_db()
    assert past.external_reference == "OTA-1"


def test_the_admin_form_shows_the_propertys_stay_rules_as_field_errors(client, alice, future):
    alice.property.min_nights = 3
    alice.property.save(update_fields=["min_nights"])
    client.login(username=alice.manager.username, password=PASSWORD)
    response = client.post(
        "/admin/bookings/booking/add/",
        {
            "tenant": alice.tenant.pk,
            "property": alice.property.pk,
            "guest": alice.guest.pk,
            "check_in": future.isoformat(),
            "check_out": (future + timedelta(days=2)).isoformat(),
            "guests_count": 1,
            "source": "admin",
            "external_reference": "",
        },
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["check_out"] == [f"{alice.property.name} takes stays of at least 3 nights."]
