from __future__ import annotations

from django.db import models
from django.db.models import Q

from bookings.choices import CalendarEntryKind
from bookings.models.booking import Booking
from pms.models import Property
from tenants.models import TenantOwned


class Block(TenantOwned):
    """Dates a property cannot be booked: set by the manager or imported from a channel.

    ``source`` says where it came from ("manual", or e.g. "channel:12");
    ``external_uid`` is the channel's UID, unique per source and property, so an
    import upserts rather than duplicates.
    """

    property = models.ForeignKey(Property, on_delete=models.CASCADE, related_name="blocks")
    start = models.DateField()
    end = models.DateField(help_text="Exclusive, like a check-out day.")
    label = models.CharField(max_length=200, blank=True)
    source = models.CharField(max_length=50, default="manual")
    external_uid = models.CharField(max_length=255, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["start"]
        constraints = [
            models.CheckConstraint(
                condition=Q(end__gt=models.F("start")),
                name="block_end_after_start",
                violation_error_message="The block must end after it starts.",
            ),
            models.UniqueConstraint(
                fields=["property", "source", "external_uid"],
                condition=~Q(external_uid=""),
                name="block_unique_external_uid",
            ),
        ]
        indexes = [models.Index(fields=["property", "start", "end"])]

    def __str__(self) -> str:
        return f"{self.property} blocked {self.start}..{self.end}"


class CalendarEntry(TenantOwned):
    """The availability calendar, as a projection kept by the calendar handler.

    One row per booking (or block), holding the state of the newest event
    applied. ``sequence`` guards order: an older event never overwrites a newer
    one, whatever order deliveries arrive in. Day-by-day status is derived from
    these spans (see selectors.property_calendar_month).
    """

    property = models.ForeignKey(
        Property, on_delete=models.CASCADE, related_name="calendar_entries"
    )
    kind = models.CharField(max_length=10, choices=CalendarEntryKind.choices)
    source_key = models.CharField(max_length=100, unique=True)
    booking = models.ForeignKey(
        Booking, on_delete=models.CASCADE, null=True, blank=True, related_name="calendar_entries"
    )
    start = models.DateField()
    end = models.DateField(help_text="Exclusive.")
    active = models.BooleanField(default=True)
    label = models.CharField(max_length=200, blank=True)
    sequence = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "calendar entries"
        indexes = [
            models.Index(
                fields=["property", "start", "end"],
                name="calendar_active_span",
                condition=Q(active=True),
            )
        ]

    def __str__(self) -> str:
        return f"{self.property} {self.start}..{self.end} ({self.kind})"
