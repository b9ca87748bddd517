from __future__ import annotations

from django.db import models


class ChannelKind(models.TextChoices):
    AIRBNB = "airbnb", "Airbnb (iCal)"
    BOOKING_COM = "booking_com", "Booking.com (iCal)"
    VRBO = "vrbo", "Vrbo (iCal)"
    ICAL = "ical", "Generic iCal"
    PUSH_API = "push_api", "Push API (JSON)"
    PUSH_CHANNEX = "push_channex", "Channex (availability and rates API)"


ICAL_KINDS = (ChannelKind.AIRBNB, ChannelKind.BOOKING_COM, ChannelKind.VRBO, ChannelKind.ICAL)
# Channels we push availability to (channelsync.services.push.ADAPTERS has one adapter for each).
PUSH_KINDS = (ChannelKind.PUSH_API, ChannelKind.PUSH_CHANNEX)


class ChannelStatus(models.TextChoices):
    NEW = "new", "Not synced yet"
    OK = "ok", "OK"
    ERROR = "error", "Error"
    STALE = "stale", "Stale"
    PAUSED = "paused", "Paused"


class ConflictStatus(models.TextChoices):
    OPEN = "open", "Open"
    RESOLVED = "resolved", "Resolved"
    DISMISSED = "dismissed", "Dismissed"


class OutboundStatus(models.TextChoices):
    """State of a row in the outbound outbox (channel updates, webhook deliveries)."""

    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    SUPERSEDED = "superseded", "Superseded by a newer update"
    FAILED = "failed", "Gave up"
