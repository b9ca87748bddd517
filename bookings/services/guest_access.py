"""Guest access: secret tokens that open one booking, and the guest-host message thread."""

from __future__ import annotations

import hashlib
import secrets
from datetime import date, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, QuerySet, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from bookings.choices import MessageSender
from bookings.errors import BookingError
from bookings.events import BOOKING_THREAD_AGGREGATE, MESSAGE_POSTED, message_posted_payload
from bookings.models import Booking, GuestAccessToken, GuestMessage
from pms.pipeline.publishing import emit_event

MAX_MESSAGE_LENGTH = 5000


def token_hash(raw_token: str) -> str:
    return hashlib.sha256(raw_token.encode()).hexdigest()


def guest_token_issue(*, booking: Booking) -> str:
    """Mint a token for ``booking``; returns the raw token (shown once, never stored).

    Every email with ``{guest_link}`` (confirmation, reminders, a staff re-send, each
    send attempt) mints one, so a booking keeps at most ``GUEST_TOKENS_LIVE_PER_BOOKING``
    live tokens: minting one more revokes the oldest (the link in the oldest email
    stops working; the newest links keep working).
    """
    raw = secrets.token_urlsafe(32)
    keep = max(int(settings.GUEST_TOKENS_LIVE_PER_BOOKING), 1)
    with transaction.atomic():
        # Serialise issuers of one booking, so two concurrent sends cannot both keep N.
        Booking.objects.select_for_update().filter(pk=booking.pk).first()
        older = list(
            GuestAccessToken.objects.filter(booking=booking, revoked_at__isnull=True)
            .order_by("-created_at", "-pk")
            .values_list("pk", flat=True)[keep - 1 :]
        )
        if older:
            GuestAccessToken.objects.filter(pk__in=older).update(revoked_at=timezone.now())
        GuestAccessToken.objects.create(
            tenant_id=booking.tenant_id, booking=booking, token_hash=token_hash(raw)
        )
    return raw


def guest_token_expiry_cutoff() -> date:
    """Tokens of bookings that checked out before this day have expired."""
    return timezone.localdate() - timedelta(days=settings.GUEST_TOKEN_DAYS_AFTER_CHECKOUT)


def _live_tokens() -> QuerySet[GuestAccessToken]:
    return GuestAccessToken.objects.select_related(
        "booking", "booking__property", "booking__guest"
    ).filter(revoked_at__isnull=True, booking__check_out__gte=guest_token_expiry_cutoff())


def guest_token_live(*, token_id: int) -> GuestAccessToken | None:
    """The token row ``token_id`` if it still opens its booking (a guest page's session
    keeps the row's id, never the token): revoking or expiring it closes the pages too."""
    return _live_tokens().filter(pk=token_id).first()


def guest_token_resolve(*, raw_token: str) -> GuestAccessToken | None:
    """The live token row for ``raw_token``, or None (unknown, revoked or expired).

    A token expires ``GUEST_TOKEN_DAYS_AFTER_CHECKOUT`` days after the booking's
    check-out (read from the booking, so a changed stay moves the expiry with it).
    """
    if not raw_token or len(raw_token) > 200:
        return None
    token = _live_tokens().filter(token_hash=token_hash(raw_token)).first()
    if token is not None:
        GuestAccessToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token


def guest_tokens_revoke(*, booking: Booking) -> int:
    """Revoke every live link of the booking (the admin's "Revoke the guests' private links")."""
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
        _keep_awaiting_reply(booking, message)
        emit_event(
            tenant_id=booking.tenant_id,
            aggregate_type=BOOKING_THREAD_AGGREGATE,
            aggregate_id=booking.pk,
            event_type=MESSAGE_POSTED,
            payload=dict(message_posted_payload(message)),
            actor=author or f"guest:{booking.reference}",
        )
    return message


def _keep_awaiting_reply(booking: Booking, message: GuestMessage) -> None:
    """A guest's message starts the wait (unless one already waits); the host's ends it."""
    if message.sender == MessageSender.GUEST:
        since = Coalesce(F("awaiting_reply_since"), Value(message.created_at))
        Booking.objects.filter(pk=booking.pk).update(awaiting_reply_since=since)
        booking.awaiting_reply_since = booking.awaiting_reply_since or message.created_at
    else:
        Booking.objects.filter(pk=booking.pk).update(awaiting_reply_since=None)
        booking.awaiting_reply_since = None
