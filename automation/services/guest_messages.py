"""Guest messages from templates: scheduled on booking events, sent by the sweep.

Every function here is DB-only (it runs inside event handlers): it creates,
reschedules or cancels ``OutboundMessage`` rows; sending happens in tasks
after commit. The rows are reconciled with the booking's *current* state under
its row lock, so events handled late or twice converge to the same rows.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from automation.choices import MessageChannel, OutboundStatus, TemplateTrigger
from automation.localtime import end_of_day, local_moment
from automation.models import MessageTemplate, OutboundMessage
from automation.services.outbound import outbound_message_queue
from automation.templating import booking_context, template_render
from bookings.choices import BookingStatus
from bookings.events import BOOKING_CANCELLED, BOOKING_CONFIRMED, BOOKING_CREATED
from bookings.models import Booking

# Bookings that still expect their reminders.
REMINDER_STATUSES = (BookingStatus.CONFIRMED,)
OPEN_STATUSES = (OutboundStatus.SCHEDULED, OutboundStatus.PENDING)


def template_message_key(*, template: MessageTemplate, booking: Booking) -> str:
    return f"template:{template.pk}:booking:{booking.pk}:{template.trigger}"


def template_send_at(*, template: MessageTemplate, booking: Booking) -> datetime | None:
    """When a timed template is due for this booking (aware UTC); None: send now."""
    zone = booking.property.timezone
    if template.trigger == TemplateTrigger.BEFORE_CHECK_IN:
        day = booking.check_in - timedelta(days=template.offset_days)
    elif template.trigger == TemplateTrigger.CHECK_IN_DAY:
        day = booking.check_in
    elif template.trigger == TemplateTrigger.AFTER_CHECK_OUT:
        day = booking.check_out + timedelta(days=template.offset_days)
    else:
        return None
    return local_moment(day, template.local_time, zone)


def _useful_until(*, template: MessageTemplate, booking: Booking, send_at: datetime) -> datetime:
    """After this moment a late message makes no sense (the reminder is for a past arrival)."""
    zone = booking.property.timezone
    if template.trigger == TemplateTrigger.BEFORE_CHECK_IN:
        return local_moment(booking.check_in, booking.property.check_in_time, zone)
    if template.trigger == TemplateTrigger.CHECK_IN_DAY:
        return end_of_day(booking.check_in, zone)
    return send_at + timedelta(days=1)


def _recipient(template: MessageTemplate, booking: Booking) -> str:
    if template.channel == MessageChannel.SMS:
        return booking.guest.phone
    return booking.guest.email


def _rendered(template: MessageTemplate, booking: Booking) -> tuple[str, str]:
    context = booking_context(booking)
    subject = " ".join(template_render(template.subject, context).split())
    return subject[:200], template_render(template.body, context)


def _templates(booking: Booking, triggers: list[str]) -> list[MessageTemplate]:
    return list(
        MessageTemplate.objects.filter(
            tenant_id=booking.tenant_id, is_active=True, trigger__in=triggers
        ).order_by("pk")
    )


def guest_template_exists(*, booking: Booking, trigger: str) -> bool:
    """Whether the booking's tenant has an active email template for ``trigger``."""
    return MessageTemplate.objects.filter(
        tenant_id=booking.tenant_id, is_active=True, trigger=trigger, channel=MessageChannel.EMAIL
    ).exists()


def _send_now(template: MessageTemplate, booking: Booking) -> None:
    recipient = _recipient(template, booking)
    if not recipient:
        return
    subject, body = _rendered(template, booking)
    outbound_message_queue(
        tenant_id=booking.tenant_id,
        idempotency_key=template_message_key(template=template, booking=booking),
        kind=f"template:{template.trigger}",
        booking=booking,
        template=template,
        channel=template.channel,
        recipient=recipient,
        subject=subject,
        body=body,
    )


def _schedule(template: MessageTemplate, booking: Booking, now: datetime) -> None:
    key = template_message_key(template=template, booking=booking)
    send_at = template_send_at(template=template, booking=booking)
    assert send_at is not None
    if send_at < now:
        # Booked (or moved) too late for the planned moment: send now while it
        # still makes sense, otherwise not at all.
        if now > _useful_until(template=template, booking=booking, send_at=send_at):
            OutboundMessage.objects.filter(idempotency_key=key, status__in=OPEN_STATUSES).update(
                status=OutboundStatus.CANCELLED, last_error="no longer relevant after a change"
            )
            return
        send_at = now
    subject, body = _rendered(template, booking)
    existing = OutboundMessage.objects.select_for_update().filter(idempotency_key=key).first()
    if existing is not None:
        if existing.status == OutboundStatus.SCHEDULED:
            # A date change: move it (and re-render, the dates are in the text).
            existing.send_after, existing.subject, existing.body = send_at, subject, body
            existing.save(update_fields=["send_after", "subject", "body"])
        return  # already due, sending, sent, failed or cancelled: not ours to redo
    recipient = _recipient(template, booking)
    if recipient:
        outbound_message_queue(
            tenant_id=booking.tenant_id,
            idempotency_key=key,
            kind=f"template:{template.trigger}",
            booking=booking,
            template=template,
            channel=template.channel,
            recipient=recipient,
            subject=subject,
            body=body,
            # Due now still goes through the sweep-free path (pending + enqueue).
            send_after=send_at if send_at > now else None,
        )


def guest_messages_cancel(*, booking: Booking, reason: str) -> int:
    """Cancel the booking's template messages not sent yet. Returns how many."""
    return (
        OutboundMessage.objects.filter(
            booking=booking, template__isnull=False, status__in=OPEN_STATUSES
        )
        # The cancellation notice itself is the one message a cancelled stay still gets.
        .exclude(kind=f"template:{TemplateTrigger.BOOKING_CANCELLED}")
        .update(status=OutboundStatus.CANCELLED, last_error=reason)
    )


def guest_messages_reconcile(
    *, booking_id: int, event_type: str, now: datetime | None = None
) -> None:
    """Bring the booking's template messages in line with its current state. DB only.

    Must run inside a transaction (the event handler's): the booking row lock
    serialises it with the booking services and with other deliveries.
    """
    assert transaction.get_connection().in_atomic_block
    now = now or timezone.now()
    booking = (
        Booking.objects.select_for_update(of=("self",))
        .select_related("property", "guest")
        .filter(pk=booking_id)
        .first()
    )
    if booking is None:
        return
    if booking.status == BookingStatus.CANCELLED:
        guest_messages_cancel(booking=booking, reason="booking cancelled")
        if event_type == BOOKING_CANCELLED:
            for template in _templates(booking, [TemplateTrigger.BOOKING_CANCELLED]):
                _send_now(template, booking)
        return
    if booking.status not in REMINDER_STATUSES:
        if booking.status == BookingStatus.NO_SHOW:
            guest_messages_cancel(booking=booking, reason="guest did not show")
        return
    timed = [
        TemplateTrigger.BEFORE_CHECK_IN,
        TemplateTrigger.CHECK_IN_DAY,
        TemplateTrigger.AFTER_CHECK_OUT,
    ]
    for template in _templates(booking, [TemplateTrigger.BOOKING_CONFIRMED, *timed]):
        if template.trigger == TemplateTrigger.BOOKING_CONFIRMED:
            if event_type in (BOOKING_CREATED, BOOKING_CONFIRMED):
                _send_now(template, booking)
        else:
            _schedule(template, booking, now)
