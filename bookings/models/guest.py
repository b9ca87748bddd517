"""What a guest holds: a secret access token, a message thread, and API idempotency keys."""

from __future__ import annotations

from django.db import models

from bookings.choices import MessageSender
from bookings.models.booking import Booking
from tenants.models import TenantOwned


class GuestAccessToken(TenantOwned):
    """A secret that lets a guest see, cancel and message about one booking.

    Only the SHA-256 of the token is stored; the token itself is shown once
    (in the booking response and the guest's email).
    """

    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, related_name="access_tokens")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        state = "revoked" if self.revoked_at else "active"
        return f"token for {self.booking.reference} ({state})"


class GuestMessage(TenantOwned):
    """One message of the thread between the guest and the host about a booking."""

    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, related_name="messages")
    sender = models.CharField(max_length=10, choices=MessageSender.choices)
    author = models.CharField(
        max_length=150, blank=True, help_text="Staff username for host messages."
    )
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.get_sender_display()} on {self.booking_id}: {self.body[:40]}"


class IdempotencyKey(models.Model):
    """The first response to a POST with an ``Idempotency-Key``, replayed for repeats.

    ``scope`` separates clients (an authenticated user, or a keyed hash of an
    anonymous client's address and subject); ``key`` is an HMAC of the client's
    key, never the key; the fingerprint is a hash of method, path and the
    validated request, so a key reused with another request is refused.
    ``response_body`` holds the answer sealed with a key derived from the
    Idempotency-Key (see ``bookings.api.idempotency``): nothing in the row is
    readable without it. Rows live at least 24 h; beat purges older ones.
    """

    scope = models.CharField(max_length=100)
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    completed = models.BooleanField(default=False)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "key"], name="idempotency_unique_scope_key")
        ]

    def __str__(self) -> str:
        return f"{self.scope}:{self.key}"
