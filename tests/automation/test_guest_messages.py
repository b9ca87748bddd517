"""Template messages: validated on save, scheduled at property-local times, claimed once."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, time, timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import connection, transaction

from automation.choices import MessageChannel, OutboundStatus, TemplateTrigger
from automation.models import MessageTemplate, OutboundMessage
from automation.services import (
    guest_messages_reconcile,
    outbound_message_send,
    outbound_messages_claim_due,
)
from bookings.services import booking_cancel, booking_modify
from pms.pipeline.errors import PermanentError, TransientError
from tests.automation.conftest import book
from tests.factories import GuestFactory


def _template(world, **kwargs) -> MessageTemplate:
    defaults = {
        "tenant": world.tenant,
        "name": "Arrival info",
        "trigger": TemplateTrigger.BEFORE_CHECK_IN,
        "offset_days": 2,
        "local_time": time(10, 0),
        "subject": "See you soon at {{ property.name }}",
        "body": "Hello {{ guest.name }}, check-in {{ booking.check_in|date:'Y-m-d' }} "
        "from {{ property.check_in_time|time:'H:i' }}. {{ guest_link }}",
    }
    template = MessageTemplate(**{**defaults, **kwargs})
    template.full_clean()
    template.save()
    return template


def _reconcile(booking, event_type):
    with transaction.atomic():
        guest_messages_reconcile(booking_id=booking.pk, event_type=event_type)


@pytest.mark.django_db
def test_unknown_variable_or_bad_syntax_is_refused_when_the_template_is_saved(alice):
    with pytest.raises(ValidationError) as unknown:
        _template(alice, body="Hi {{ guest.nmae }} at {{ booking.reference }}")
    assert "guest.nmae" in str(unknown.value)
    with pytest.raises(ValidationError) as syntax:
        _template(alice, subject="{% if %}")
    assert "subject" in unknown.value.message_dict or "subject" in syntax.value.message_dict
    with pytest.raises(ValidationError):
        _template(alice, body="{% load static %}{% static 'x' %}")  # no libraries for tenants
    assert _template(alice).pk  # the default one is fine


@pytest.mark.django_db
def test_reminder_moves_across_a_dst_change_and_is_sent_once_at_local_time(alice, smtp_settings):
    alice.property.timezone = "Europe/Lisbon"  # WET -> WEST on 2026-03-29 at 01:00 UTC
    alice.property.save()
    guest = GuestFactory.create(tenant=alice.tenant, name="O'Brien & Sons", email="ob@example.test")
    template = _template(alice)
    with time_machine.travel(datetime(2026, 3, 10, 12, tzinfo=UTC), tick=False):
        booking = book(alice, date(2026, 3, 30), date(2026, 4, 2), guest=guest)
        _reconcile(booking, "booking.created")
        message = OutboundMessage.objects.get(template=template, booking=booking)
        # 2 days before, 10:00 Lisbon winter time = 10:00 UTC.
        assert message.status == OutboundStatus.SCHEDULED
        assert message.send_after == datetime(2026, 3, 28, 10, tzinfo=UTC)
        with transaction.atomic():
            booking = booking_modify(
                booking=booking, check_in=date(2026, 3, 31), check_out=date(2026, 4, 3)
            )
        _reconcile(booking, "booking.modified")
    message.refresh_from_db()
    # Rescheduled to 2026-03-29 10:00 Lisbon summer time = 09:00 UTC, text re-rendered.
    assert message.send_after == datetime(2026, 3, 29, 9, tzinfo=UTC)
    assert "2026-03-31" in message.body and message.status == OutboundStatus.SCHEDULED

    with time_machine.travel(datetime(2026, 3, 29, 8, 59, 30, tzinfo=UTC), tick=False):
        assert outbound_messages_claim_due() == []  # 09:59:30 local: not yet
    with time_machine.travel(datetime(2026, 3, 29, 9, 0, 30, tzinfo=UTC), tick=False):
        assert outbound_messages_claim_due() == [(message.pk, alice.tenant.pk, message.kind)]
        assert outbound_messages_claim_due() == []  # claimed: a second sweep finds nothing
        assert outbound_message_send(message_id=message.pk) == "sent"
        assert outbound_message_send(message_id=message.pk) == "nothing to send"  # redelivery
    assert len(smtp_settings.messages) == 1
    received = smtp_settings.messages[0]
    assert received["to"] == ["ob@example.test"]
    assert "O'Brien & Sons" in received["data"]  # plain text: not autoescaped to &amp;
    assert "check-in 2026-03-31 from 15:00" in received["data"]
    assert "?token=" in received["data"]


@pytest.mark.django_db
def test_a_send_time_in_the_repeated_autumn_hour_is_sent_once_at_its_first_occurrence(
    alice, smtp_settings
):
    alice.property.timezone = "Europe/Lisbon"  # WEST -> WET on 2026-10-25: 01:00-02:00 twice
    alice.property.save()
    template = _template(alice, local_time=time(1, 30))
    with time_machine.travel(datetime(2026, 10, 1, 12, tzinfo=UTC), tick=False):
        booking = book(alice, date(2026, 10, 27), date(2026, 10, 30))
        _reconcile(booking, "booking.created")
    message = OutboundMessage.objects.get(template=template, booking=booking)
    # 01:30 on 2026-10-25 happens at 00:30 UTC (summer time) and again at 01:30 UTC:
    # the message is due at the first one.
    assert message.send_after == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)

    with time_machine.travel(datetime(2026, 10, 25, 0, 29, 30, tzinfo=UTC), tick=False):
        assert outbound_messages_claim_due() == []
    with time_machine.travel(datetime(2026, 10, 25, 0, 30, 30, tzinfo=UTC), tick=False):
        assert outbound_messages_claim_due() == [(message.pk, alice.tenant.pk, message.kind)]
        assert outbound_message_send(message_id=message.pk) == "sent"
    # The wall clock shows 01:30 again an hour later: nothing is due a second time.
    with time_machine.travel(datetime(2026, 10, 25, 1, 30, 30, tzinfo=UTC), tick=False):
        assert outbound_messages_claim_due() == []
        assert outbound_message_send(message_id=message.pk) == "nothing to send"
    assert len(smtp_settings.messages) == 1


@pytest.mark.django_db
def test_cancellation_cancels_scheduled_messages_and_sends_the_cancel_template(alice, future):
    reminder = _template(alice)
    cancelled = _template(
        alice,
        name="Cancelled",
        trigger=TemplateTrigger.BOOKING_CANCELLED,
        subject="Booking {{ booking.reference }} cancelled",
        body="Sorry to see you go, {{ guest.name }}.",
    )
    booking = book(alice, future, future + timedelta(days=3))
    _reconcile(booking, "booking.created")
    with transaction.atomic():
        booking_cancel(booking=booking, reason="test")
    _reconcile(booking, "booking.cancelled")
    _reconcile(booking, "booking.cancelled")  # redelivered: nothing new
    statuses = dict(
        OutboundMessage.objects.filter(booking=booking).values_list("template_id", "status")
    )
    assert statuses == {reminder.pk: "cancelled", cancelled.pk: "pending"}


@pytest.mark.django_db
def test_a_booking_made_too_late_for_its_reminder_gets_it_now_or_not_at_all(alice):
    template = _template(alice, offset_days=7)
    today = date.today()
    booking = book(alice, today + timedelta(days=3), today + timedelta(days=5))
    _reconcile(booking, "booking.created")
    message = OutboundMessage.objects.get(template=template)
    assert message.status == OutboundStatus.PENDING  # due already: enqueued at once


@pytest.mark.django_db
def test_sms_template_goes_to_the_http_gateway_with_an_idempotency_key(alice, future, sms_gateway):
    _template(alice, channel=MessageChannel.SMS, subject="", offset_days=400 % 365)
    guest = GuestFactory.create(tenant=alice.tenant, phone="+351911111111")
    booking = book(alice, future, future + timedelta(days=2), guest=guest)
    _reconcile(booking, "booking.created")
    message = OutboundMessage.objects.get(booking=booking, channel="sms")
    OutboundMessage.objects.filter(pk=message.pk).update(status=OutboundStatus.PENDING)

    sms_gateway.replies = [503]
    with pytest.raises(TransientError):
        outbound_message_send(message_id=message.pk)
    message.refresh_from_db()
    assert message.status == OutboundStatus.PENDING  # the task retries it
    assert outbound_message_send(message_id=message.pk) == "sent"
    assert outbound_message_send(message_id=message.pk) == "nothing to send"
    assert len(sms_gateway.requests) == 2
    last = sms_gateway.requests[-1]
    assert last["json"]["to"] == "+351911111111"
    assert last["headers"]["Idempotency-Key"] == message.idempotency_key
    assert last["headers"]["Authorization"] == "Bearer test-key"
    assert "Hello" in last["json"]["body"] and "{guest_link}" not in last["json"]["body"]


@pytest.mark.django_db
def test_sms_gateway_refusal_is_permanent_and_marks_the_message_failed(alice, sms_gateway):
    message = OutboundMessage.objects.create(
        tenant=alice.tenant, idempotency_key="sms-1", kind="t", channel="sms",
        recipient="+1", body="x",
    )  # fmt: skip
    sms_gateway.replies = [400]
    with pytest.raises(PermanentError):
        outbound_message_send(message_id=message.pk)
    message.refresh_from_db()
    assert message.status == OutboundStatus.FAILED and "HTTP 400" in message.last_error


def _due_messages(tenant, count, *, due=True):
    when = datetime.now(UTC) + timedelta(minutes=-1 if due else 60)
    OutboundMessage.objects.bulk_create(
        OutboundMessage(
            tenant=tenant,
            idempotency_key=f"k-{due}-{i}-{when.timestamp()}",
            kind="t",
            recipient="a@example.test",
            body="x",
            status=OutboundStatus.SCHEDULED,
            send_after=when,
        )
        for i in range(count)
    )


@pytest.mark.parametrize("not_due", [5, 200])
@pytest.mark.django_db
def test_sweep_query_count_does_not_grow_with_bookings_or_messages(
    alice, django_assert_num_queries, not_due, future
):
    for offset in range(0, min(not_due, 20) * 4, 4):
        book(alice, future + timedelta(days=offset), future + timedelta(days=offset + 2))
    _due_messages(alice.tenant, 3)
    _due_messages(alice.tenant, not_due, due=False)
    # SAVEPOINT, SELECT ... FOR UPDATE SKIP LOCKED, UPDATE, RELEASE SAVEPOINT.
    with django_assert_num_queries(4):
        assert len(outbound_messages_claim_due()) == 3
    with django_assert_num_queries(3):  # nothing due: no UPDATE
        assert outbound_messages_claim_due() == []


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_sweeps_never_claim_the_same_message(alice):
    _due_messages(alice.tenant, 60)
    barrier = threading.Barrier(2)
    claimed: list[list[int]] = [[], []]

    def sweep(slot: int) -> None:
        try:
            barrier.wait()
            while batch := outbound_messages_claim_due(batch_size=7):
                claimed[slot] += [pk for pk, _tenant, _kind in batch]
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not set(claimed[0]) & set(claimed[1])
    assert len(claimed[0]) + len(claimed[1]) == 60
    assert not OutboundMessage.objects.exclude(status=OutboundStatus.PENDING).exists()
