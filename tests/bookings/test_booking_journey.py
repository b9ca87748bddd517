"""A guest's whole journey across API, worker, SMTP and admin, as users see it."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db.models import Sum
from rest_framework.test import APIClient

from bookings.models import Booking, LedgerEntry, Payment, Refund
from testkit.processes import wait_until
from tests.factories import PASSWORD
from tests.support.pipeline import assert_pipeline_settled

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _text(message) -> str:
    """The decoded subject and body of a received email (quoted-printable and all)."""
    parsed = email.message_from_string(message["data"], policy=email.policy.default)
    body = parsed.get_body(preferencelist=("plain",))
    assert body is not None
    return parsed["Subject"] + "\n" + body.get_content()


def _mail_to(mailbox, address, text_part):
    return [_text(m) for m in mailbox.messages if address in m["to"] and text_part in _text(m)]


def test_book_pay_cancel_refund_from_the_guest_and_manager_side(
    live_worker, mailbox, alice, client, future
):
    alice.property.cancellation_policy = "flexible"
    alice.property.save()
    check_in = future + timedelta(days=10)
    api = APIClient()
    created = api.post(
        "/api/v1/bookings/",
        {
            "property": str(alice.property.public_id),
            "check_in": check_in.isoformat(),
            "check_out": (check_in + timedelta(days=2)).isoformat(),
            "guests": 2,
            "guest": {"name": "Ana Costa", "email": "ana@example.test"},
        },
        format="json",
        HTTP_IDEMPOTENCY_KEY="journey-1",
    )
    assert created.status_code == 201, created.json()
    reference = created.json()["reference"]
    booking = Booking.objects.get(reference=reference)

    # The pipeline: calendar, payment request, ledger, the guest's two emails.
    assert_pipeline_settled()
    welcome = wait_until(
        lambda: _mail_to(mailbox, "ana@example.test", f"Your booking {reference}"),
        20,
        what="guest email",
    )
    found = re.search(r"http://\S+\?token=\S+", welcome[0])
    assert found is not None
    link = found.group(0)
    emailed_token = parse_qs(urlsplit(link).query)["token"][0]
    assert emailed_token != created.json()["token"]  # minted at send time, never stored
    opened = APIClient().get(f"/api/v1/bookings/{reference}/", {"token": emailed_token})
    assert opened.status_code == 200 and opened.json()["status"] == "confirmed"
    wait_until(
        lambda: _mail_to(mailbox, "ana@example.test", "Please transfer"),
        20,
        what="payment instructions",
    )

    payment = Payment.objects.get(booking=booking)
    assert payment.amount == booking.total == Decimal("250.00")

    # The manager sees the transfer arrive and marks it in the admin.
    client.login(username=alice.manager.username, password=PASSWORD)
    client.post(
        "/admin/bookings/payment/", {"action": "mark_received", "_selected_action": [payment.pk]}
    )
    assert_pipeline_settled()

    # The guest cancels 40 days ahead: flexible policy, full refund.
    guest = APIClient()
    guest.credentials(HTTP_AUTHORIZATION=f"Bearer {emailed_token}")
    assert guest.post(f"/api/v1/bookings/{reference}/cancel/").json()["status"] == "cancelled"
    assert_pipeline_settled()
    refund = Refund.objects.get(booking=booking)
    assert refund.amount == Decimal("250.00") and refund.status == "pending"

    client.post(
        "/admin/bookings/refund/", {"action": "mark_completed", "_selected_action": [refund.pk]}
    )
    assert_pipeline_settled()
    balance = LedgerEntry.objects.filter(booking=booking).aggregate(s=Sum("amount"))["s"]
    assert balance == 0
    kinds = sorted(LedgerEntry.objects.filter(booking=booking).values_list("kind", flat=True))
    assert kinds == ["accommodation", "accommodation", "cleaning", "cleaning", "payment", "refund"]
