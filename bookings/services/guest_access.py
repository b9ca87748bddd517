"""Guest access: secret tokens that open one booking, and the guest-host message thread."""

from __future__ import annotations

import hashlib
import secrets

from django.db import transaction
from django.utils import timezone

from bookings.choices import MessageSender
from bookings.errors import BookingError
from bookings.models import Booking, GuestAccessToken, GuestMessage
from pms.outbox import emit_event

MAX_MESSAGE_LENGTH = 5000


def token_hash(raw_token: str) -> str:
    return hashlib.sha256(raw_token.encode()).hexdigest()


def guest_token_issue(*, booking: Booking) -> str:
    """Mint a token for ``booking``; returns the raw token (shown once, never stored)."""
    raw = secrets.token_urlsafe(32)
    GuestAccessToken.objects.create(
        tenant_id=booking.tenant_id, booking=booking, token_hash=token_hash(raw)
    )
    return raw


def guest_token_resolve(*, raw_token: str) -> GuestAccessToken | None:
    """The live token row for ``raw_token``, or None (unknown or revoked)."""
    if not raw_token or len(raw_token) > 200:
        return None
    token = (
        GuestAccessToken.objects.select_related("booking", "booking__property", "booking__guest")
        .filter(token_hash=token_hash(raw_token), revoked_at__isnull=True)
        .first()
    )
    if token is not None:
        GuestAccessToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token


def guest_tokens_revoke(*, booking: Booking) -> int:
    return GuestAccessToken.objects.filter(booking=booking, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )


def guest_message_post(
    *, booking: Booking, sender: str, body: str, author: str = ""
) -> GuestMessage:
    """Add a message to the booking's thread; the event lets messaging deliver it by email."""
    body = body.strip()
    if not body:
        raise BookingError("empty_message", "The message is empty.", field="body")
    if len(body) > MAX_MESSAGE_LENGTH:
        raise BookingError(
            "message_too_long",
            f"Messages are at most {MAX_MESSAGE_LENGTH} characters.",
            field="body",
        )
    if sender not in MessageSender.values:
        raise BookingError("invalid", "Unknown sender.")
    with transaction.atomic():
        message = GuestMessage.objects.create(
            tenant_id=booking.tenant_id, booking=booking, sender=sender, author=author, body=body
        )
        emit_event(
            tenant_id=booking.tenant_id,
            aggregate_type="booking_thread",
            aggregate_id=booking.pk,
            event_type="message.posted",
            payload={
                "message_id": message.pk,
                "booking_id": booking.pk,
                "sender": sender,
                "author": author,
            },
            actor=author or f"guest:{booking.reference}",
        )
    return message
