"""Managers' money pages: statements, payments, replies; scoped to their tenant."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest

from bookings.handlers import book_ledger_entries
from bookings.models import GuestMessage
from bookings.services import booking_create, payment_request
from pms.models import DomainEvent
from tests.factories import PASSWORD
from tests.support.admin_forms import change_form_data, inline_prefix

pytestmark = pytest.mark.django_db


@pytest.fixture
def booked(alice, future):
    booking = booking_create(
        tenant=alice.tenant,
        property=alice.property,
        guest=alice.guest,
        check_in=future,
        check_out=future + timedelta(days=2),
    )
    for event in DomainEvent.objects.filter(aggregate_id=str(booking.pk)):
        book_ledger_entries(event)
    return booking


def test_statement_lists_the_month_and_downloads_as_csv(client, alice, booked):
    client.login(username=alice.manager.username, password=PASSWORD)
    entry_month = booked.ledger_entries.first().entry_date.strftime("%Y-%m")
    params = {"property": alice.property.pk, "month": entry_month}
    page = client.get("/admin/bookings/ledgerentry/statement/", params).content.decode()
    assert booked.reference in page and "250.00" in page
    response = client.get("/admin/bookings/ledgerentry/statement/", {**params, "format": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["date", "booking", "kind", "description", "amount", "currency"]
    assert rows[-1][2:5] == ["net", "guest balance movement", "250.00"]


def test_another_tenants_statement_is_never_shown(client, bob, alice, booked):
    client.login(username=bob.manager.username, password=PASSWORD)
    params = {"property": alice.property.pk, "format": "csv"}
    response = client.get("/admin/bookings/ledgerentry/statement/", params)
    body = response.content.decode()
    assert booked.reference not in body and alice.property.name not in body


def test_payments_of_another_tenant_are_invisible(client, alice, bob, booked):
    payment = payment_request(booking=booked, amount=booked.total)
    client.login(username=bob.manager.username, password=PASSWORD)
    assert booked.reference not in client.get("/admin/bookings/payment/").content.decode()
    assert client.get(f"/admin/bookings/payment/{payment.pk}/change/").status_code == 404
    client.post(
        "/admin/bookings/payment/", {"action": "mark_received", "_selected_action": [payment.pk]}
    )
    payment.refresh_from_db()
    assert payment.status == "pending"


def test_a_reply_from_the_booking_page_goes_through_the_thread_service(client, alice, booked):
    client.login(username=alice.manager.username, password=PASSWORD)
    url = f"/admin/bookings/booking/{booked.pk}/change/"
    reply = inline_prefix(client, url, "reply to the guest")
    data = change_form_data(
        client, url, **{f"{reply}-0-body": "Your key is in the lockbox, code 4711."}
    )
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    message = GuestMessage.objects.get()
    assert (message.sender, message.author) == ("host", alice.manager.username)
    assert DomainEvent.objects.filter(
        event_type="message.posted", aggregate_id=str(booked.pk)
    ).exists()
