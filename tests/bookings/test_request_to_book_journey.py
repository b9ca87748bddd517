"""Request to book through a real worker and the SMTP sink: held, then accepted, declined
or expired, with what the guest and the manager receive."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import timedelta
from decimal import Decimal
from functools import partial

import pytest
from django.db import connection
from django.db.models import Sum
from django.utils import timezone
from rest_framework.test import APIClient

from bookings.choices import BookingStatus
from bookings.models import Booking, CalendarEntry, LedgerEntry, Payment
from bookings.services import booking_create, booking_requests_submit_expired
from bookings.services.requests import EXPIRE_REQUEST_TASK
from pms.models import BookingMode, FailedTask
from testkit.processes import wait_until
from tests.factories import PASSWORD, GuestFactory
from tests.support.pipeline import assert_pipeline_settled

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _text(message) -> str:
    parsed = email.message_from_string(message["data"], policy=email.policy.default)
    body = parsed.get_body(preferencelist=("plain",))
    assert body is not None
    return parsed["Subject"] + "\n" + body.get_content()


def _mail_to(mailbox, address, text_part):
    return [_text(m) for m in mailbox.messages if address in m["to"] and text_part in _text(m)]


def _request_mode(world):
    world.property.booking_mode = BookingMode.REQUEST
    world.property.save()


def _book_online(world, check_in, email_address):
    created = APIClient().post(
        "/api/v1/bookings/",
        {
            "property": str(world.property.public_id),
            "check_in": check_in.isoformat(),
            "check_out": (check_in + timedelta(days=2)).isoformat(),
            "guests": 2,
            "guest": {"name": "Ana Costa", "email": email_address},
        },
        format="json",
        HTTP_IDEMPOTENCY_KEY=f"request-{email_address}",
    )
    assert created.status_code == 201, created.json()
    assert created.json()["status"] == "requested"
    return Booking.objects.get(reference=created.json()["reference"])


def test_a_request_is_held_unpaid_until_accepted_then_confirmed_and_asked_to_pay_once(
    live_worker, mailbox, alice, client, future
):
    _request_mode(alice)
    booking = _book_online(alice, future, "ana@example.test")
    reference = booking.reference
    assert_pipeline_settled()

    received = wait_until(
        lambda: _mail_to(mailbox, "ana@example.test", f"Your booking request {reference}"),
        20,
        what="request received email",
    )
    assert re.search(r"http://\S+\?token=\S+", received[0])  # the guest's link
    wait_until(
        lambda: _mail_to(mailbox, alice.manager.email, "please accept or decline"),
        20,
        what="the manager's request notice",
    )
    assert CalendarEntry.objects.get(booking=booking).active  # the dates are held
    assert not Payment.objects.filter(booking=booking).exists()
    assert not _mail_to(mailbox, "ana@example.test", "Please transfer")
    assert not _mail_to(mailbox, "ana@example.test", f"Your booking {reference}")

    client.login(username=alice.manager.username, password=PASSWORD)
    answer = client.post(f"/admin/bookings/booking/{booking.pk}/answer/", {"decision": "accept"})
    assert answer.status_code == 302
    assert_pipeline_settled()

    confirmation = wait_until(
        lambda: _mail_to(mailbox, "ana@example.test", f"Your booking {reference}"),
        20,
        what="the confirmation",
    )
    assert "The host accepted your request" in confirmation[0]
    wait_until(
        lambda: _mail_to(mailbox, "ana@example.test", "Please transfer"),
        20,
        what="payment instructions",
    )
    booking.refresh_from_db()
    payments = list(Payment.objects.filter(booking=booking))
    assert booking.status == BookingStatus.CONFIRMED
    assert [p.amount for p in payments] == [booking.total]
    assert len(_mail_to(mailbox, "ana@example.test", "Please transfer")) == 1
    assert len(_mail_to(mailbox, "ana@example.test", f"Your booking {reference}")) == 1


def test_a_declined_request_tells_the_guest_frees_the_dates_and_asks_nothing(
    live_worker, mailbox, alice, client, future
):
    _request_mode(alice)
    alice.property.cancellation_policy = "strict"
    alice.property.save()
    booking = _book_online(alice, timezone.localdate() + timedelta(days=3), "bea@example.test")
    assert_pipeline_settled()

    client.login(username=alice.manager.username, password=PASSWORD)
    client.post(
        "/admin/bookings/booking/", {"action": "decline_selected", "_selected_action": [booking.pk]}
    )
    assert_pipeline_settled()

    told = wait_until(
        lambda: _mail_to(mailbox, "bea@example.test", "was not accepted"),
        20,
        what="the declined email",
    )
    assert "not accepted in time" not in told[0]
    booking.refresh_from_db()
    assert booking.status == BookingStatus.CANCELLED
    assert booking.cancellation_fee == Decimal("0")
    assert booking.cancellation_reason == "declined by the host"
    assert not CalendarEntry.objects.get(booking=booking).active
    assert not Payment.objects.filter(booking=booking).exists()
    assert not _mail_to(mailbox, "bea@example.test", "Please transfer")
    balance = LedgerEntry.objects.filter(booking=booking).aggregate(s=Sum("amount"))["s"]
    assert balance == 0


@pytest.fixture
def refuse_cancelling():
    """A database trigger that makes cancelling the given booking fail (a bug, bad data)."""
    created: list[int] = []

    def refuse(booking_id: int) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE OR REPLACE FUNCTION test_refuse_cancel() RETURNS trigger AS $$ "
                "BEGIN RAISE EXCEPTION 'simulated failure cancelling booking %', NEW.id; END "
                "$$ LANGUAGE plpgsql"
            )
            cursor.execute(
                "CREATE TRIGGER test_refuse_cancel BEFORE UPDATE ON bookings_booking "
                f"FOR EACH ROW WHEN (NEW.id = {int(booking_id)} AND NEW.status = 'cancelled') "
                "EXECUTE FUNCTION test_refuse_cancel()"
            )
        created.append(booking_id)

    yield refuse
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER IF EXISTS test_refuse_cancel ON bookings_booking")
        cursor.execute("DROP FUNCTION IF EXISTS test_refuse_cancel()")


def test_expired_requests_are_declined_the_guests_told_and_one_failure_stops_none(
    live_worker, mailbox, alice, bob, future, refuse_cancelling
):
    requests: list[Booking] = []
    for world, offset in ((alice, 0), (alice, 5), (bob, 0)):
        guest = GuestFactory.create(tenant=world.tenant, email=f"g{len(requests)}@example.test")
        requests.append(
            booking_create(
                tenant=world.tenant,
                property=world.property,
                guest=guest,
                check_in=future + timedelta(days=offset),
                check_out=future + timedelta(days=offset + 2),
                status=BookingStatus.REQUESTED,
                source="direct",
            )
        )
    Booking.objects.filter(pk__in=[b.pk for b in requests]).update(
        created_at=timezone.now() - timedelta(hours=25)
    )
    fresh = booking_create(
        tenant=alice.tenant,
        property=alice.property,
        guest=alice.guest,
        check_in=future + timedelta(days=10),
        check_out=future + timedelta(days=12),
        status=BookingStatus.REQUESTED,
    )
    failing = requests[1]
    refuse_cancelling(failing.pk)

    assert booking_requests_submit_expired() == 3

    failed = wait_until(
        lambda: FailedTask.objects.filter(task_name=EXPIRE_REQUEST_TASK).first(),
        30,
        what="the failing decline's FailedTask",
    )
    assert failed.args == [failing.pk] and failed.tenant_id == alice.tenant.pk
    assert "simulated failure" in failed.exception_message
    for address in ("g0@example.test", "g2@example.test"):
        wait_until(
            partial(_mail_to, mailbox, address, "not accepted in time"),
            30,
            what=f"{address}'s expiry email",
        )
    assert_pipeline_settled()
    statuses = dict(Booking.objects.values_list("pk", "status"))
    assert statuses[requests[0].pk] == statuses[requests[2].pk] == BookingStatus.CANCELLED
    assert statuses[failing.pk] == statuses[fresh.pk] == BookingStatus.REQUESTED
    expired = Booking.objects.get(pk=requests[0].pk)
    assert expired.cancellation_reason == "request expired"
    assert expired.cancellation_fee == Decimal("0")
    assert not CalendarEntry.objects.get(booking=expired).active
    assert not Payment.objects.filter(booking__in=requests).exists()
