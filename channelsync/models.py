"""Channels (iCal and push APIs), their import bookkeeping, conflicts, and the
outbound outboxes (channel updates, webhook deliveries).

Outbound rows are written by event handlers inside the delivery transaction and
sent by tasks after commit; a beat sweep re-enqueues rows still pending past
their ``next_attempt_at``, so a lost publish is never a lost update.
"""

from __future__ import annotations

import builtins
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from bookings.models import Block, Booking
from channelsync.choices import (
    PUSH_KINDS,
    ChannelKind,
    ChannelStatus,
    ConflictStatus,
    OutboundStatus,
)
from channelsync.webhook_signing import new_standard_secret, standard_secret
from pms.models import Property
from tenants.models import TenantOwned

MIN_POLL_INTERVAL = timedelta(minutes=5)


def new_export_token() -> str:
    return secrets.token_urlsafe(24)


def new_webhook_secret() -> str:
    """A Standard Webhooks ``whsec_`` secret (older subscriptions keep 64 hex characters)."""
    return new_standard_secret()


class Channel(TenantOwned):
    """One listing of a property on one channel, with its sync health."""

    property = models.ForeignKey(Property, on_delete=models.CASCADE, related_name="channels")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=ChannelKind.choices)
    import_url = models.URLField(
        max_length=1000, blank=True, help_text="The channel's iCal export URL (what we poll)."
    )
    push_url = models.URLField(
        max_length=1000, blank=True, help_text="Push API: where availability updates are POSTed."
    )
    push_api_key = models.CharField(max_length=200, blank=True)
    push_listing_id = models.CharField(
        max_length=100, blank=True, help_text="The listing id the remote API knows."
    )
    rate_limit_per_second = models.FloatField(
        default=5.0, validators=[MinValueValidator(0.01)], help_text="Push API requests/second."
    )
    rate_limit_burst = models.PositiveIntegerField(default=5, validators=[MinValueValidator(1)])
    export_token = models.CharField(max_length=64, unique=True, default=new_export_token)
    poll_interval = models.DurationField(
        default=timedelta(minutes=15),
        # Feeds (Airbnb, Booking.com) refresh every few minutes at best; faster
        # polling only burns our workers and their rate limits.
        validators=[MinValueValidator(MIN_POLL_INTERVAL)],
    )
    is_paused = models.BooleanField(default=False)
    next_poll_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # Conditional requests: what the feed told us last time.
    feed_etag = models.CharField(max_length=300, blank=True)
    feed_last_modified = models.CharField(max_length=100, blank=True)
    # Health.
    status = models.CharField(
        max_length=10, choices=ChannelStatus.choices, default=ChannelStatus.NEW
    )
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    # Events of the last imported feed that could not be read (one per line): the
    # rest imported, and these events' blocks were kept as they were.
    import_warnings = models.TextField(blank=True)
    stale_alerted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["property__name", "name"]
        indexes = [models.Index(fields=["tenant", "status"])]

    def __str__(self) -> str:
        return f"{self.property} / {self.name}"

    @builtins.property
    def block_source(self) -> str:
        """``Block.source`` of the blocks this channel imported."""
        return f"channel:{self.pk}"

    @builtins.property
    def is_ical(self) -> bool:
        return self.kind not in PUSH_KINDS


class ImportedUid(TenantOwned):
    """A UID a channel's feed has carried, and how many fetches in a row it was missing."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="imported_uids")
    uid = models.CharField(max_length=255)
    block = models.ForeignKey(Block, on_delete=models.CASCADE, related_name="+")
    missing_fetches = models.PositiveIntegerField(default=0)
    last_seen_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["channel", "uid"], name="imported_uid_unique")
        ]

    def __str__(self) -> str:
        return f"{self.channel_id}:{self.uid}"


class Conflict(TenantOwned):
    """An imported block overlapping a booking or another channel's block."""

    property = models.ForeignKey(Property, on_delete=models.CASCADE, related_name="conflicts")
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="conflicts")
    block = models.ForeignKey(Block, on_delete=models.CASCADE, related_name="conflicts")
    booking = models.ForeignKey(
        Booking, on_delete=models.CASCADE, null=True, blank=True, related_name="conflicts"
    )
    other_block = models.ForeignKey(
        Block, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    start = models.DateField()
    end = models.DateField()
    status = models.CharField(
        max_length=10, choices=ConflictStatus.choices, default=ConflictStatus.OPEN
    )
    detected_at = models.DateTimeField(auto_now_add=True)
    alerted_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    resolution_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-detected_at"]
        constraints = [
            # One open incident per pair: re-imports do not pile up duplicates.
            models.UniqueConstraint(
                fields=["block", "booking"],
                condition=Q(status="open", booking__isnull=False),
                name="conflict_open_block_booking",
            ),
            models.UniqueConstraint(
                fields=["block", "other_block"],
                condition=Q(status="open", other_block__isnull=False),
                name="conflict_open_block_block",
            ),
        ]

    def __str__(self) -> str:
        return f"Conflict on {self.property} {self.start}..{self.end}"


class ChannelUpdate(TenantOwned):
    """An availability update owed to a push channel (outbox at the integration edge)."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="updates")
    event_id = models.UUIDField()
    aggregate_type = models.CharField(max_length=50)
    aggregate_id = models.CharField(max_length=64)
    sequence = models.PositiveBigIntegerField()
    payload = models.JSONField()
    status = models.CharField(
        max_length=12, choices=OutboundStatus.choices, default=OutboundStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["channel", "event_id"], name="channel_update_unique")
        ]
        indexes = [
            models.Index(fields=["channel", "status", "created_at"]),
            models.Index(fields=["channel", "aggregate_type", "aggregate_id", "status"]),
            models.Index(
                fields=["next_attempt_at"], name="channel_update_due", condition=Q(status="pending")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.aggregate_type}:{self.aggregate_id}#{self.sequence} -> {self.channel_id}"


class WebhookSubscription(TenantOwned):
    url = models.URLField(max_length=1000)
    event_types = models.JSONField(
        default=list, help_text='Event types, e.g. ["booking.created"]; ["*"] for all.'
    )
    secret = models.CharField(max_length=100, default=new_webhook_secret)
    is_active = models.BooleanField(default=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    # First failed attempt of the current run of failures (None after a success):
    # auto-disable needs the failures to span WEBHOOK_DISABLE_AFTER_SECONDS.
    failing_since = models.DateTimeField(null=True, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.TextField(blank=True)
    disable_alerted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["url"]

    def __str__(self) -> str:
        return self.url

    @builtins.property
    def signing_secret(self) -> str:
        """The ``whsec_`` secret receivers verify Standard Webhooks signatures with."""
        return standard_secret(self.secret)

    def wants(self, event_type: str) -> bool:
        return "*" in self.event_types or event_type in self.event_types


class WebhookDelivery(TenantOwned):
    subscription = models.ForeignKey(
        WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries"
    )
    event_id = models.UUIDField()
    event_type = models.CharField(max_length=100)
    payload = models.JSONField()
    status = models.CharField(
        max_length=12, choices=OutboundStatus.choices, default=OutboundStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "event_id"], name="webhook_delivery_unique"
            )
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="webhook_delivery_due",
                condition=Q(status="pending"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} -> {self.subscription}"
