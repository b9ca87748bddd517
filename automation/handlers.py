"""Messages that events cause: recorded here (DB only), sent after commit by tasks."""

from __future__ import annotations

from datetime import date
from typing import cast

from django.utils import timezone

from automation.choices import MaintenancePriority, TemplateTrigger
from automation.events import MAINTENANCE_ASSIGNED, MAINTENANCE_REPORTED, MaintenanceSnapshot
from automation.models import MaintenanceRequest
from automation.services import (
    cleaning_task_reconcile,
    guest_messages_reconcile,
    guest_template_exists,
    manager_emails,
    outbound_message_queue,
)
from automation.services.cleaning import refresh_turnovers
from bookings.choices import BookingStatus, DeclineReason
from bookings.events import (
    BOOKING_CANCELLED,
    BOOKING_CONFIRMED,
    BOOKING_CREATED,
    BOOKING_MODIFIED,
    BOOKING_NO_SHOW,
    MESSAGE_POSTED,
    PAYMENT_REQUESTED,
    BookingCancelled,
    BookingChange,
    BookingModified,
    MessagePosted,
    PaymentRequested,
)
from bookings.models import Booking, GuestMessage, Payment
from pms.models import DomainEvent
from pms.pipeline.registry import event_handler


def _booking(booking_id: int) -> Booking:
    return Booking.objects.select_related("guest", "property").get(pk=booking_id)


def _answer_by(booking: Booking) -> str:
    """When a request to book is declined unless the host answers, property-local."""
    moment = timezone.localtime(
        booking.created_at + booking.property.request_expiry, booking.property.timezone
    )
    return f"{moment:%Y-%m-%d %H:%M} ({booking.property.timezone})"


def _stay(booking: Booking) -> str:
    return (
        f"your stay at {booking.property.name} from {booking.check_in} to "
        f"{booking.check_out} ({booking.nights} nights, {booking.guests_count} guests)"
    )


LINK_LINES = (
    "See, cancel or message us about your booking here (keep this link private):\n{guest_link}\n"
)


@event_handler(
    BOOKING_CREATED,
    BOOKING_CONFIRMED,
    BOOKING_CANCELLED,
    queue="messaging",
    name="automation.guest_booking_email",
)
def email_guest_their_booking(event: DomainEvent) -> None:
    """The guest hears of their booking: confirmed, or a request received, then accepted
    (``booking.confirmed``) or not (a declined ``booking.cancelled``).

    What the email says follows the event's payload, not the booking's current state, so
    a late delivery of ``booking.created`` still says "request received", not a second
    confirmation.
    """
    payload = cast(BookingChange, event.payload)
    cancellation = payload.get("cancellation")
    declined = cancellation.get("declined", "") if cancellation else ""
    if event.event_type == BOOKING_CANCELLED and not declined:
        return  # a cancellation: the guest did it, or a template tells them
    booking = _booking(payload["booking_id"])
    if not booking.guest.email or booking.source not in ("direct", "admin"):
        return
    hello = f"Hello {booking.guest.name},\n\n"
    where = f"{booking.reference} at {booking.property.name}"
    if event.event_type == BOOKING_CANCELLED:
        kind = "guest_request_declined"
        if declined == DeclineReason.EXPIRED:
            subject = f"Your booking request {where} was not accepted in time"
            news = "the host did not answer in time, so your request was not accepted"
        else:
            subject = f"Your booking request {where} was not accepted"
            news = "the host could not accept your request"
        body = (
            f"{hello}{_stay(booking)}: {news}. The dates are free again and you owe "
            "nothing: no payment was taken.\n"
        )
    elif payload["status"] == BookingStatus.REQUESTED:
        kind = "guest_request_received"
        subject = f"Your booking request {where}"
        body = (
            f"{hello}we received your request for {_stay(booking)}. "
            f"Total: {booking.total} {booking.currency}. The dates are held for you while "
            f"the host answers, by {_answer_by(booking)} at the latest. You pay nothing "
            "until the host accepts: then you receive the confirmation and the payment "
            f"instructions.\n\n{LINK_LINES}"
        )
    else:
        kind = "guest_access"
        subject = f"Your booking {where}"
        accepted = (
            "The host accepted your request: " if event.event_type == BOOKING_CONFIRMED else ""
        )
        body = (
            f"{hello}{accepted}{_stay(booking)} is confirmed. "
            f"Total: {booking.total} {booking.currency}."
            + (
                " The payment instructions follow in a separate email."
                if event.event_type == BOOKING_CONFIRMED
                else ""
            )
            + f"\n\n{LINK_LINES}"
        )
    outbound_message_queue(
        tenant_id=event.tenant_id,
        idempotency_key=f"{event.id}:guest_booking",
        kind=kind,
        booking=booking,
        recipient=booking.guest.email,
        subject=subject,
        body=body,
    )


def _stay_changed(payload: BookingChange) -> bool:
    """Home, dates, party or price: a new reference alone (a channel's) tells the guest nothing."""
    previous = payload.get("previous")
    if previous is None:
        return False
    before = (previous["property_id"], previous["check_in"], previous["check_out"])
    after = (payload["property_id"], payload["check_in"], payload["check_out"])
    return (
        before != after
        or previous["guests_count"] != payload["guests_count"]
        or previous["total"] != payload["total"]
    )


@event_handler(
    BOOKING_MODIFIED, BOOKING_CANCELLED, queue="messaging", name="automation.guest_change_email"
)
def email_guest_their_changed_stay(event: DomainEvent) -> None:
    """The guest hears of every change of their stay and of its cancellation, whoever made it.

    Channel bookings are the channel's to tell. A cancellation is covered by the tenant's
    own "booking cancelled" email template when it has one (sent by the template handler).
    """
    payload = cast(BookingChange, event.payload)
    booking = _booking(payload["booking_id"])
    if not booking.guest.email or booking.source not in ("direct", "admin"):
        return
    cancellation = payload.get("cancellation")
    if event.event_type == BOOKING_MODIFIED:
        if not _stay_changed(payload):
            return
        subject = f"Your booking {booking.reference} has changed"
        news = (
            f"your stay at {booking.property.name} is now from {booking.check_in} to "
            f"{booking.check_out} ({booking.nights} nights, {booking.guests_count} guests). "
            f"New total: {booking.total} {booking.currency}. "
            + (
                "You pay nothing until the host accepts your request.\n\n"
                if payload["status"] == BookingStatus.REQUESTED
                else "If you paid more than that, the difference is refunded; if less, we "
                "ask you for the rest.\n\n"
            )
        )
    elif cancellation is not None:
        if cancellation.get("declined"):
            return  # a request not accepted: email_guest_their_booking says so, no fee to tell
        if guest_template_exists(booking=booking, trigger=TemplateTrigger.BOOKING_CANCELLED):
            return
        subject = f"Your booking {booking.reference} is cancelled"
        news = (
            f"your stay at {booking.property.name} from {booking.check_in} to "
            f"{booking.check_out} is cancelled. Under the "
            f"{cancellation['policy']} cancellation policy the fee is {cancellation['fee']} "
            f"{booking.currency}; whatever you paid above it is refunded to you.\n\n"
        )
    else:
        return
    outbound_message_queue(
        tenant_id=event.tenant_id,
        idempotency_key=f"{event.id}:guest_change",
        kind="stay_change",
        booking=booking,
        recipient=booking.guest.email,
        subject=subject,
        body=(
            f"Hello {booking.guest.name},\n\n{news}"
            "Your booking, payments and messages (keep this link private):\n{guest_link}\n"
        ),
    )


@event_handler(PAYMENT_REQUESTED, queue="messaging", name="automation.payment_instructions_email")
def email_payment_instructions(event: DomainEvent) -> None:
    payload = cast(PaymentRequested, event.payload)
    payment = Payment.objects.select_related("booking__guest").get(pk=payload["id"])
    if not payment.booking.guest.email:
        return
    outbound_message_queue(
        tenant_id=event.tenant_id,
        idempotency_key=f"{event.id}:payment_instructions",
        kind="payment_instructions",
        booking=payment.booking,
        recipient=payment.booking.guest.email,
        subject=f"Payment for booking {payment.booking.reference}",
        body=payload.get("instructions") or f"Please pay {payment.amount} {payment.currency}.",
    )


@event_handler(MESSAGE_POSTED, queue="messaging", name="automation.thread_email")
def email_thread_message(event: DomainEvent) -> None:
    """A guest's message goes to the tenant's managers; a host's reply to the guest."""
    message = GuestMessage.objects.select_related("booking__guest", "booking__property").get(
        pk=cast(MessagePosted, event.payload)["message_id"]
    )
    booking = message.booking
    if message.sender == "guest":
        recipients = manager_emails(tenant_id=event.tenant_id)
        subject = f"Message from {booking.guest.name} about {booking.reference}"
    else:
        recipients = [booking.guest.email] if booking.guest.email else []
        subject = f"Reply about your booking {booking.reference}"
    for recipient in recipients:
        outbound_message_queue(
            tenant_id=event.tenant_id,
            idempotency_key=f"{event.id}:thread:{recipient}",
            kind="thread_message",
            booking=booking,
            recipient=recipient,
            subject=subject,
            body=message.body,
        )


# --- Guest messages from templates, cleaning (queue: automation) -----------------------

TEMPLATE_EVENTS = (
    BOOKING_CREATED,
    BOOKING_CONFIRMED,
    BOOKING_MODIFIED,
    BOOKING_CANCELLED,
    BOOKING_NO_SHOW,
)


@event_handler(*TEMPLATE_EVENTS, queue="automation", name="automation.template_messages")
def schedule_template_messages(event: DomainEvent) -> None:
    """Create, reschedule or cancel the booking's template messages (sent by tasks later)."""
    payload = cast(BookingChange, event.payload)
    guest_messages_reconcile(booking_id=payload["booking_id"], event_type=event.event_type)


@event_handler(*TEMPLATE_EVENTS, queue="automation", name="automation.cleaning")
def schedule_cleaning(event: DomainEvent) -> None:
    """Schedule, move or cancel the cleaning after the stay, and tell the cleaner."""
    payload = cast(BookingChange, event.payload)
    cleaning_task_reconcile(booking_id=payload["booking_id"])
    previous = payload.get("previous")
    if previous:
        # The old check-in day may have lost its same-day turnover.
        refresh_turnovers(
            property_id=previous["property_id"], day=date.fromisoformat(previous["check_in"])
        )


# --- Manager notifications (queue: messaging) ------------------------------------------


@event_handler(
    BOOKING_CREATED,
    BOOKING_MODIFIED,
    BOOKING_CANCELLED,
    queue="messaging",
    name="automation.manager_booking_email",
)
def email_managers_about_booking(event: DomainEvent) -> None:
    """Managers hear of every new booking (a request to answer, flagged), every cancellation,
    and every change a guest made to their stay (their own changes they know of)."""
    payload = cast(BookingChange, event.payload)
    if event.event_type == BOOKING_MODIFIED and not (
        event.actor.startswith("guest:") and _stay_changed(payload)
    ):
        return
    booking = _booking(payload["booking_id"])
    kind = "manager_notification"
    where = f"{booking.reference} at {booking.property.name}"
    if event.event_type == BOOKING_CREATED and payload["status"] == BookingStatus.REQUESTED:
        # Someone waits for this answer: sent at once, not as batch work.
        kind = "manager_booking_request"
        subject = f"Booking request {where}: please accept or decline"
        intro = (
            "A guest asks to book; the dates are held until you answer. Accept or decline it "
            "in the admin (Bookings, filter: awaiting your answer) by "
            f"{_answer_by(booking)}, or it is declined automatically"
        )
    elif event.event_type == BOOKING_CREATED:
        subject = f"New booking {where}"
        intro = "A new booking arrived"
    elif event.event_type == BOOKING_MODIFIED:
        previous = cast(BookingModified, payload)["previous"]
        subject = f"Guest changed booking {where}"
        intro = (
            f"The guest changed their stay (it was {previous['check_in']} to "
            f"{previous['check_out']}, {previous['guests_count']} guests, total "
            f"{previous['total']} {previous['currency']})"
        )
    else:
        cancellation = cast(BookingCancelled, payload)["cancellation"]
        reason = cancellation["reason"] or "no reason given"
        if cancellation.get("declined"):
            subject = f"Booking request {where} declined ({reason})"
            intro = f"A request to book was declined ({reason})"
        else:
            subject = f"Booking {where} cancelled"
            intro = f"A booking was cancelled ({reason})"
    body = (
        f"{intro}:\n\n"
        f"Guest: {booking.guest.name} {booking.guest.email}\n"
        f"Stay: {booking.check_in} to {booking.check_out} ({booking.nights} nights, "
        f"{booking.guests_count} guests)\n"
        f"Total: {booking.total} {booking.currency}; source: {booking.get_source_display()}\n"
    )
    for recipient in manager_emails(tenant_id=event.tenant_id):
        outbound_message_queue(
            tenant_id=event.tenant_id,
            idempotency_key=f"{event.id}:manager:{recipient}",
            kind=kind,
            booking=booking,
            recipient=recipient,
            subject=subject,
            body=body,
        )


@event_handler(
    MAINTENANCE_REPORTED,
    MAINTENANCE_ASSIGNED,
    queue="messaging",
    name="automation.maintenance_email",
)
def email_about_maintenance(event: DomainEvent) -> None:
    """Managers hear of every new request (urgent ones flagged), assignees of their work."""
    request = MaintenanceRequest.objects.select_related("property", "assignee", "booking").get(
        pk=cast(MaintenanceSnapshot, event.payload)["request_id"]
    )
    where = request.property.name
    detail = (
        f"{request.title}\nPriority: {request.get_priority_display()}\n"
        f"Reported by: {request.get_reported_by_display()}"
        + (f" (booking {request.booking.reference})" if request.booking else "")
        + f"\n\n{request.description}\n"
    )
    if event.event_type == MAINTENANCE_REPORTED:
        urgent = request.priority == MaintenancePriority.URGENT
        subject = f"{'URGENT ' if urgent else ''}Maintenance at {where}: {request.title}"
        recipients = manager_emails(tenant_id=event.tenant_id)
        kind = "maintenance_urgent" if urgent else "maintenance_reported"
    else:
        if request.assignee is None or not request.assignee.email:
            return
        subject = f"Maintenance assigned to you at {where}: {request.title}"
        recipients = [request.assignee.email]
        kind = "maintenance_assigned"
    for recipient in recipients:
        outbound_message_queue(
            tenant_id=event.tenant_id,
            idempotency_key=f"{event.id}:maintenance:{recipient}",
            kind=kind,
            booking=request.booking,
            recipient=recipient,
            subject=subject[:200],
            body=detail,
        )
