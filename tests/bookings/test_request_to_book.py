"""Request to book: a per-property mode where online bookings wait for the host's answer.

These run without a worker: handlers are called with the events the services emitted.
The journey through a real worker and the SMTP sink is in test_request_to_book_journey.py.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from automation.handlers import (
    email_guest_their_booking,
    email_guest_their_changed_stay,
    email_managers_about_booking,
)
from automation.models import OutboundMessage
from bookings.choices import BookingStatus, DeclineReason
from bookings.errors import BookingError
from bookings.events import BOOKING_CANCELLED, BOOKING_CONFIRMED, BOOKING_CREATED
from bookings.handlers import request_payment_for_the_stay
from bookings.models import Booking, Payment
from bookings.services import (
    booking_cancel,
    booking_cancel_preview,
    booking_confirm,
    booking_create,
    booking_decline,
    booking_request_expire,
    booking_requests_submit_expired,
)
from bookings.services.requests import EXPIRE_REQUEST_TASK
from pms.models import BookingMode, DomainEvent, FairWorkItem
from tests.factories import PASSWORD, GuestFactory
from tests.support.admin_forms import change_form_data

pytestmark = pytest.mark.django_db


def _request_mode(world, hours=None):
    world.property.booking_mode = BookingMode.REQUEST
    world.property.booking_request_expiry_hours = hours
    world.property.save()
    return world.property


def _request(world, check_in, nights=2, guest=None):
    return booking_create(
        tenant=world.tenant,
        property=world.property,
        guest=guest or world.guest,
        check_in=check_in,
        check_out=check_in + timedelta(days=nights),
        status=BookingStatus.REQUESTED,
    )


def _post(world, check_in, key, email="ana@example.test"):
    return APIClient().post(
        "/api/v1/bookings/",
        {
            "property": str(world.property.public_id),
            "check_in": check_in.isoformat(),
            "check_out": (check_in + timedelta(days=2)).isoformat(),
            "guests": 2,
            "guest": {"name": "Ana Costa", "email": email},
        },
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )


def _event(booking, event_type):
    return DomainEvent.objects.get(
        aggregate_type="booking", aggregate_id=str(booking.pk), event_type=event_type
    )


def _age(booking, hours):
    """Move the request's creation ``hours`` into the past (no sleeping)."""
    Booking.objects.filter(pk=booking.pk).update(created_at=timezone.now() - timedelta(hours=hours))


# --- The API ---------------------------------------------------------------------


def test_the_api_books_a_request_on_a_request_mode_property_and_holds_the_dates(alice, future):
    _request_mode(alice)
    created = _post(alice, future, "request-1")
    assert created.status_code == 201, created.json()
    assert created.json()["status"] == "requested"
    booking = Booking.objects.get(reference=created.json()["reference"])
    assert booking.status == BookingStatus.REQUESTED
    # The dates are held: another guest cannot take them while the host decides.
    again = _post(alice, future, "request-2", email="bea@example.test")
    assert again.status_code == 409, again.json()
    assert again.json()["error"]["code"] == "unavailable"
    public = APIClient().get(f"/api/v1/properties/{alice.property.public_id}/")
    assert public.json()["booking_mode"] == "request"


def test_the_api_confirms_at_once_on_an_instant_property(alice, future):
    assert alice.property.booking_mode == BookingMode.INSTANT  # the default
    created = _post(alice, future, "instant-1")
    assert created.status_code == 201 and created.json()["status"] == "confirmed"


# --- Payment follows acceptance ------------------------------------------------------


def test_no_payment_is_asked_while_the_booking_is_a_request(alice, future):
    booking = _request(alice, future)
    with transaction.atomic():
        request_payment_for_the_stay(_event(booking, BOOKING_CREATED))
    assert not Payment.objects.filter(booking=booking).exists()


@pytest.mark.parametrize("order", ["created_first", "confirmed_first"])
def test_acceptance_asks_for_the_total_once_whichever_event_is_handled_first(alice, future, order):
    booking = _request(alice, future)
    booking = booking_confirm(booking=booking, actor="admin:alice-manager")
    events = [_event(booking, BOOKING_CREATED), _event(booking, BOOKING_CONFIRMED)]
    if order == "confirmed_first":
        events.reverse()
    for event in [*events, *events]:  # and each redelivered
        with transaction.atomic():
            request_payment_for_the_stay(event)
    payments = list(Payment.objects.filter(booking=booking))
    assert [p.amount for p in payments] == [booking.total]


# --- Declining -------------------------------------------------------------------------


def test_declining_costs_no_fee_records_the_reason_and_frees_the_dates(alice, future):
    alice.property.cancellation_policy = "strict"  # the policy would keep it all
    alice.property.save()
    check_in = timezone.localdate() + timedelta(days=2)
    booking = _request(alice, check_in)
    declined = booking_decline(booking=booking, actor="admin:alice-manager")
    assert declined.status == BookingStatus.CANCELLED
    assert declined.cancellation_fee == Decimal("0")
    assert declined.cancellation_reason == "declined by the host"
    cancellation = _event(booking, BOOKING_CANCELLED).payload["cancellation"]
    assert cancellation["declined"] == DeclineReason.HOST and cancellation["fee"] == "0.00"
    with transaction.atomic():
        request_payment_for_the_stay(_event(booking, BOOKING_CREATED))
    assert not Payment.objects.filter(booking=booking).exists()  # never asked, even late
    again = _request(alice, check_in, guest=GuestFactory.create(tenant=alice.tenant))
    assert again.status == BookingStatus.REQUESTED


def test_only_a_request_can_be_declined(alice, future):
    booking = booking_confirm(booking=_request(alice, future))
    with pytest.raises(BookingError) as refused:
        booking_decline(booking=booking)
    assert refused.value.code == "not_a_request"
    booking.refresh_from_db()
    assert booking.status == BookingStatus.CONFIRMED


def test_a_guest_withdrawing_a_request_owes_no_fee(alice):
    alice.property.cancellation_policy = "strict"
    alice.property.save()
    booking = _request(alice, timezone.localdate() + timedelta(days=2))
    cancelled = booking_cancel(booking=booking, reason="cancelled by the guest")
    assert cancelled.cancellation_fee == Decimal("0")
    assert _event(booking, BOOKING_CANCELLED).payload["cancellation"]["declined"] == ""


# --- Who is told what ----------------------------------------------------------------


def _messages(booking):
    return {m.kind: m for m in OutboundMessage.objects.filter(booking=booking)}


def test_a_request_tells_the_guest_it_is_received_and_the_managers_to_answer(alice, future):
    _request_mode(alice, hours=48)
    guest = GuestFactory.create(tenant=alice.tenant, email="ana@example.test")
    booking = _request(alice, future, guest=guest)
    created = _event(booking, BOOKING_CREATED)
    with transaction.atomic():
        email_guest_their_booking(created)
        email_managers_about_booking(created)
    sent = _messages(booking)
    received = sent["guest_request_received"]
    assert received.subject.startswith(f"Your booking request {booking.reference}")
    assert "{guest_link}" in received.body and "pay nothing until the host accepts" in received.body
    assert "guest_access" not in sent  # no confirmation yet
    notice = sent["manager_booking_request"]
    assert notice.recipient == alice.manager.email
    assert "please accept or decline" in notice.subject
    answer_by = timezone.localtime(
        booking.created_at + timedelta(hours=48), alice.property.timezone
    )
    assert f"{answer_by:%Y-%m-%d %H:%M}" in notice.body


def test_acceptance_sends_the_confirmation_even_if_the_created_event_comes_late(alice, future):
    guest = GuestFactory.create(tenant=alice.tenant, email="ana@example.test")
    booking = booking_confirm(booking=_request(alice, future, guest=guest))
    with transaction.atomic():
        email_guest_their_booking(_event(booking, BOOKING_CONFIRMED))
        email_guest_their_booking(_event(booking, BOOKING_CREATED))  # late: still "received"
    kinds = sorted(OutboundMessage.objects.filter(booking=booking).values_list("kind", flat=True))
    assert kinds == ["guest_access", "guest_request_received"]
    confirmation = OutboundMessage.objects.get(booking=booking, kind="guest_access")
    assert "The host accepted your request" in confirmation.body
    assert "{guest_link}" in confirmation.body


@pytest.mark.parametrize(
    ("reason", "subject_end"),
    [(DeclineReason.HOST, "was not accepted"), (DeclineReason.EXPIRED, "not accepted in time")],
)
def test_a_declined_request_tells_the_guest(alice, future, reason, subject_end):
    guest = GuestFactory.create(tenant=alice.tenant, email="ana@example.test")
    booking = booking_decline(booking=_request(alice, future, guest=guest), reason=reason)
    with transaction.atomic():
        email_guest_their_booking(_event(booking, BOOKING_CANCELLED))
    told = OutboundMessage.objects.get(booking=booking, kind="guest_request_declined")
    assert told.subject.endswith(subject_end) and "you owe nothing" in told.body


def test_a_declined_request_gets_no_cancellation_terms_email(alice, future):
    guest = GuestFactory.create(tenant=alice.tenant, email="ana@example.test")
    booking = booking_decline(booking=_request(alice, future, guest=guest))
    with transaction.atomic():
        email_guest_their_changed_stay(_event(booking, BOOKING_CANCELLED))
    assert not OutboundMessage.objects.filter(booking=booking, kind="stay_change").exists()


def test_the_cancel_preview_of_a_request_shows_no_fee(alice):
    alice.property.cancellation_policy = "strict"
    alice.property.save()
    booking = _request(alice, timezone.localdate() + timedelta(days=2))
    preview = booking_cancel_preview(booking=booking)
    assert preview.fee == Decimal("0") and preview.refund_percent == 100
    assert booking_cancel(booking=booking).cancellation_fee == preview.fee


def test_a_plain_cancellation_sends_no_declined_email(alice, future):
    booking = booking_cancel(booking=booking_confirm(booking=_request(alice, future)))
    with transaction.atomic():
        email_guest_their_booking(_event(booking, BOOKING_CANCELLED))
    assert not OutboundMessage.objects.filter(booking=booking).exists()


# --- Automatic decline -----------------------------------------------------------------


def test_the_expiry_is_the_propertys_or_the_setting(alice):
    assert alice.property.request_expiry == timedelta(hours=24)
    with override_settings(BOOKING_REQUEST_EXPIRY_HOURS=6):
        assert alice.property.request_expiry == timedelta(hours=6)
    alice.property.booking_request_expiry_hours = 72
    assert alice.property.request_expiry == timedelta(hours=72)


def _stays(world, start, count):
    """``count`` requests of ``world``'s property, one after the other."""
    return [_request(world, start + timedelta(days=3 * i)) for i in range(count)]


def test_the_sweep_submits_the_expired_requests_only(alice, bob, future):
    _request_mode(alice, hours=2)  # alice's requests expire after 2 h, bob's after 24 h
    young, old = _stays(alice, future, 2)
    _age(old, 3)
    _age(young, 1)
    bob_old, bob_young = _stays(bob, future, 2)
    _age(bob_old, 25)
    _age(bob_young, 3)
    confirmed = booking_confirm(booking=_request(alice, future + timedelta(days=20)))
    _age(confirmed, 100)
    assert booking_requests_submit_expired() == 2
    items = FairWorkItem.objects.filter(scope="requests")
    assert sorted((item.tenant_id, item.args[0]) for item in items) == sorted(
        [(alice.tenant.pk, old.pk), (bob.tenant.pk, bob_old.pk)]
    )
    assert {item.task_name for item in items} == {EXPIRE_REQUEST_TASK}
    # Run again (beat's next tick, a redelivery): the waiting items are not doubled.
    assert booking_requests_submit_expired() == 0
    assert items.count() == 2


def _sweep_statements():
    with CaptureQueriesContext(connection) as queries:
        submitted = booking_requests_submit_expired()
    return submitted, [query["sql"] for query in queries]


def test_the_sweep_statement_count_does_not_grow_with_the_requests_due(alice, bob):
    far = timezone.localdate() + timedelta(days=40)
    for booking in [*_stays(alice, far, 1), *_stays(bob, far, 1)]:
        _age(booking, 30)
    submitted, with_two = _sweep_statements()
    assert submitted == 2
    FairWorkItem.objects.all().delete()  # as if those were done; they are due again
    for booking in [
        *_stays(alice, far + timedelta(days=10), 9),
        *_stays(bob, far + timedelta(days=10), 9),
    ]:
        _age(booking, 30)
    submitted, with_twenty = _sweep_statements()
    assert submitted == 20
    assert len(with_twenty) == len(with_two), with_twenty
    # The claim, the de-duplication query and the insert (+ the savepoint around them).
    assert len(with_two) <= 5, with_two


def test_expiry_declines_an_unanswered_request_with_no_fee(alice, future):
    booking = _request(alice, future)
    assert booking_request_expire(booking_id=booking.pk) is False  # not due yet
    _age(booking, 25)
    assert booking_request_expire(booking_id=booking.pk) is True
    booking.refresh_from_db()
    assert booking.status == BookingStatus.CANCELLED
    assert booking.cancellation_reason == "request expired"
    assert booking.cancellation_fee == Decimal("0")
    assert _event(booking, BOOKING_CANCELLED).payload["cancellation"]["declined"] == "expired"
    # Redelivered: nothing more happens.
    assert booking_request_expire(booking_id=booking.pk) is False
    assert DomainEvent.objects.filter(aggregate_id=str(booking.pk)).count() == 2


def test_expiry_leaves_a_request_accepted_meanwhile_alone(alice, future):
    booking = _request(alice, future)
    _age(booking, 25)
    booking_confirm(booking=booking)
    assert booking_request_expire(booking_id=booking.pk) is False
    booking.refresh_from_db()
    assert booking.status == BookingStatus.CONFIRMED
    assert booking_request_expire(booking_id=10**9) is False  # gone: quietly nothing


# --- The admin -------------------------------------------------------------------------


def _answer(client, booking, decision):
    return client.post(
        f"/admin/bookings/booking/{booking.pk}/answer/", {"decision": decision}, follow=False
    )


def test_the_manager_accepts_on_the_change_page(client, alice, future):
    booking = _request(alice, future)
    client.login(username=alice.manager.username, password=PASSWORD)
    page = client.get(f"/admin/bookings/booking/{booking.pk}/change/").content.decode()
    assert "Accept request" in page and "Decline request" in page
    response = _answer(client, booking, "accept")
    assert response.status_code == 302
    booking.refresh_from_db()
    assert booking.status == BookingStatus.CONFIRMED
    assert _event(booking, BOOKING_CONFIRMED).actor == f"admin:{alice.manager.username}"
    page = client.get(f"/admin/bookings/booking/{booking.pk}/change/").content.decode()
    assert "Accept request" not in page  # answered


def test_the_manager_declines_on_the_change_page(client, alice, future):
    booking = _request(alice, future)
    client.login(username=alice.manager.username, password=PASSWORD)
    assert _answer(client, booking, "decline").status_code == 302
    booking.refresh_from_db()
    assert booking.status == BookingStatus.CANCELLED
    assert booking.cancellation_reason == "declined by the host"
    assert booking.cancellation_fee == Decimal("0")
    # Answering twice is a message, not an error page.
    response = _answer(client, booking, "accept")
    assert response.status_code == 302
    assert any("cannot become confirmed" in str(m) for m in response.wsgi_request._messages)


def test_the_list_actions_accept_and_decline_and_the_filter_shows_whats_waiting(
    client, alice, future
):
    first, second, third = _stays(alice, future, 3)
    client.login(username=alice.manager.username, password=PASSWORD)
    waiting = client.get("/admin/bookings/booking/", {"awaiting": "yes"})
    assert {b.pk for b in waiting.context["cl"].result_list} == {first.pk, second.pk, third.pk}
    client.post(
        "/admin/bookings/booking/", {"action": "confirm_selected", "_selected_action": [first.pk]}
    )
    client.post(
        "/admin/bookings/booking/", {"action": "decline_selected", "_selected_action": [second.pk]}
    )
    statuses = dict(Booking.objects.values_list("pk", "status"))
    assert statuses[first.pk] == BookingStatus.CONFIRMED
    assert statuses[second.pk] == BookingStatus.CANCELLED
    waiting = client.get("/admin/bookings/booking/", {"awaiting": "yes"})
    assert [b.pk for b in waiting.context["cl"].result_list] == [third.pk]
    assert Booking.objects.get(pk=second.pk).cancellation_fee == Decimal("0")


def test_another_tenants_manager_cannot_answer_a_request(client, alice, bob, future):
    booking = _request(alice, future)
    client.login(username=bob.manager.username, password=PASSWORD)
    assert _answer(client, booking, "accept").status_code == 404
    assert _answer(client, booking, "decline").status_code == 404
    client.post(
        "/admin/bookings/booking/", {"action": "confirm_selected", "_selected_action": [booking.pk]}
    )
    client.post(
        "/admin/bookings/booking/", {"action": "decline_selected", "_selected_action": [booking.pk]}
    )
    waiting = client.get("/admin/bookings/booking/", {"awaiting": "yes"})
    assert list(waiting.context["cl"].result_list) == []
    booking.refresh_from_db()
    assert booking.status == BookingStatus.REQUESTED


def test_a_view_only_role_sees_no_answer_buttons_and_cannot_answer(client, alice, future):
    booking = _request(alice, future)
    client.login(username=alice.staff.username, password=PASSWORD)
    page = client.get(f"/admin/bookings/booking/{booking.pk}/change/").content.decode()
    assert "Accept request" not in page
    assert _answer(client, booking, "accept").status_code == 403
    assert client.get(f"/admin/bookings/booking/{booking.pk}/answer/").status_code == 405
    booking.refresh_from_db()
    assert booking.status == BookingStatus.REQUESTED


def test_the_booking_mode_and_expiry_are_edited_in_the_property_admin(client, alice):
    client.login(username=alice.manager.username, password=PASSWORD)
    url = f"/admin/pms/property/{alice.property.pk}/change/"
    response = client.post(
        url,
        change_form_data(client, url, booking_mode="request", booking_request_expiry_hours=12),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    alice.property.refresh_from_db()
    assert alice.property.takes_requests
    assert alice.property.request_expiry == timedelta(hours=12)
