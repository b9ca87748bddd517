"""Guest and manager emails through the real worker and SMTP: once, or failed for review."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import transaction

from automation.choices import OutboundStatus, TemplateTrigger
from automation.models import MessageTemplate, OutboundMessage
from automation.services import outbound_message_queue
from automation.tasks import send_outbound_message
from pms.models import EventDelivery, FailedTask
from pms.pipeline.publishing import publish_deliveries
from testkit.processes import wait_until
from tests.automation.conftest import book
from tests.factories import PASSWORD, GuestFactory
from tests.support.pipeline import assert_pipeline_settled

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_confirmation_template_and_manager_notice_arrive_once_despite_redelivery(
    live_worker, mailbox, alice, future
):
    MessageTemplate.objects.create(
        tenant=alice.tenant,
        name="Welcome",
        trigger=TemplateTrigger.BOOKING_CONFIRMED,
        subject="Welcome to {{ property.name }}",
        body="Dear {{ guest.name }}, {{ booking.nights }} nights from {{ booking.check_in }}.",
    )
    guest = GuestFactory.create(tenant=alice.tenant, name="Rui", email="rui@example.test")
    booking = book(alice, future, future + timedelta(days=3), guest=guest)
    assert_pipeline_settled()
    welcome = wait_until(
        lambda: [m for m in mailbox.messages if "Welcome to Alice Villa" in m["data"]],
        20,
        what="template email",
    )
    wait_until(
        lambda: [m for m in mailbox.messages if f"New booking {booking.reference}" in m["data"]],
        20,
        what="manager notification",
    )
    assert welcome[0]["to"] == ["rui@example.test"] and "Dear Rui, 3 nights" in welcome[0]["data"]

    # Redeliver everything: the handler deliveries and the send tasks themselves.
    publish_deliveries(EventDelivery.objects.filter(event__aggregate_id=str(booking.pk)))
    for message in OutboundMessage.objects.filter(booking=booking):
        send_outbound_message.apply_async(args=(message.pk,))
    assert_pipeline_settled()
    time.sleep(2)
    assert len([m for m in mailbox.messages if "Welcome to Alice Villa" in m["data"]]) == 1
    manager_mails = [m for m in mailbox.messages if f"New booking {booking.reference}" in m["data"]]
    assert len(manager_mails) == 1 and manager_mails[0]["to"] == [alice.manager.email]
    assert set(
        OutboundMessage.objects.filter(booking=booking).values_list("status", flat=True)
    ) == {OutboundStatus.SENT}


def test_failing_smtp_retries_then_a_failed_task_and_the_booking_shows_failed(
    live_worker, mailbox, monkeypatch, alice, future, client
):
    async def refuse(server, session, envelope):  # type: ignore[no-untyped-def]
        return "451 4.3.0 Mailbox temporarily unavailable"

    monkeypatch.setattr(mailbox.controller.handler, "handle_DATA", refuse, raising=False)
    booking = book(alice, future, future + timedelta(days=2))
    assert_pipeline_settled()
    with transaction.atomic():
        message, _ = outbound_message_queue(
            tenant_id=alice.tenant.pk,
            idempotency_key="failing-smtp-1",
            kind="template:check_in_day",
            booking=booking,
            recipient="guest@example.test",
            subject="Check-in today",
            body="Welcome",
        )
    failed = wait_until(
        lambda: FailedTask.objects.filter(
            task_name="automation.tasks.send_outbound_message", args=[message.pk]
        ).first(),
        60,
        what="the send to give up",
    )
    message.refresh_from_db()
    assert message.status == OutboundStatus.FAILED
    assert message.attempts == 4  # first try + TASK_MAX_RETRIES (3)
    assert "451" in message.last_error and "SMTP" in failed.exception_class
    assert_pipeline_settled()
    client.login(username=alice.manager.username, password=PASSWORD)
    page = client.get(f"/admin/bookings/booking/{booking.pk}/change/").content.decode()
    assert "Check-in today" in page and "Failed" in page
