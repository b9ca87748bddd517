from __future__ import annotations

from datetime import time

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from automation.choices import (
    TIMED_TRIGGERS,
    CleaningStatus,
    MaintenancePriority,
    MaintenanceStatus,
    MessageChannel,
    OutboundStatus,
    ReportedBy,
    TemplateTrigger,
)
from automation.templating import TemplateProblem, template_validate
from bookings.models import Booking
from pms.models import Property
from tenants.models import TenantOwned


class MessageTemplate(TenantOwned):
    """A guest message a booking event (or a local time around the stay) sends.

    Subject and body are Django templates rendered against a fixed, plain-data
    context (see ``automation.templating``); an unknown variable is refused when
    the template is saved, not discovered when a guest gets a blank.
    """

    name = models.CharField(max_length=200)
    trigger = models.CharField(max_length=30, choices=TemplateTrigger.choices)
    offset_days = models.PositiveSmallIntegerField(
        default=0,
        validators=[MaxValueValidator(365)],
        help_text="Days before check-in / after check-out (timed triggers only).",
    )
    local_time = models.TimeField(
        default=time(10, 0), help_text="Property-local time of day (timed triggers only)."
    )
    channel = models.CharField(
        max_length=10, choices=MessageChannel.choices, default=MessageChannel.EMAIL
    )
    subject = models.CharField(max_length=200, blank=True, help_text="Email only.")
    body = models.TextField(
        help_text="Django template syntax, e.g. {{ guest.name }}, {{ booking.check_in }}, "
        "{{ property.name }}, {{ guest_link }}. Plain text, not HTML."
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["tenant", "trigger", "is_active"])]

    def __str__(self) -> str:
        return self.name

    @property
    def is_timed(self) -> bool:
        return self.trigger in TIMED_TRIGGERS

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        if self.channel == MessageChannel.EMAIL and not self.subject.strip():
            errors.setdefault("subject", []).append("An email needs a subject.")
        for field in ("subject", "body"):
            try:
                template_validate(getattr(self, field))
            except TemplateProblem as exc:
                errors.setdefault(field, []).append(str(exc))
        if errors:
            raise ValidationError(errors)


class OutboundMessage(TenantOwned):
    """One email or SMS to send: the intent is recorded before, the outcome after.

    ``idempotency_key`` is unique: whatever creates a message for an event uses
    a key derived from the event, so a redelivered event never queues a second
    one. ``status`` moves (scheduled ->) pending -> sending -> sent under a row
    lock, so a redelivered send task never sends twice. A scheduled message waits
    for ``send_after``; the reminder sweep claims it then. ``{guest_link}`` in the
    body is replaced at send time by a freshly minted guest link, never stored.
    """

    idempotency_key = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=50, help_text="What it is, e.g. guest_access, host_message.")
    channel = models.CharField(
        max_length=10, choices=MessageChannel.choices, default=MessageChannel.EMAIL
    )
    booking = models.ForeignKey(
        Booking, on_delete=models.CASCADE, null=True, blank=True, related_name="outbound_messages"
    )
    template = models.ForeignKey(
        MessageTemplate,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="messages",
    )
    recipient = models.CharField(max_length=254)
    subject = models.CharField(max_length=200, blank=True)
    body = models.TextField()
    status = models.CharField(
        max_length=10, choices=OutboundStatus.choices, default=OutboundStatus.PENDING
    )
    send_after = models.DateTimeField(
        null=True,
        blank=True,
        db_index=True,
        help_text="Scheduled: when it is due. Pending: when the sweep re-enqueues it if unsent.",
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sending_started_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "send_after"])]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} to {self.recipient}: {self.subject or self.kind}"


class CleaningTask(TenantOwned):
    """The cleaning after one booking: on its check-out day, before the next check-in.

    Handlers reconcile it with the booking's *current* state under the booking's
    row lock, so an older event delivered late cannot move it back.
    """

    property = models.ForeignKey(Property, on_delete=models.CASCADE, related_name="cleaning_tasks")
    booking = models.OneToOneField(Booking, on_delete=models.CASCADE, related_name="cleaning_task")
    scheduled_for = models.DateField(help_text="Property-local check-out date.")
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="cleaning_tasks",
    )
    status = models.CharField(
        max_length=10, choices=CleaningStatus.choices, default=CleaningStatus.SCHEDULED
    )
    same_day_turnover = models.BooleanField(
        default=False, help_text="The next guest checks in the same day."
    )
    notes = models.TextField(
        blank=True, help_text="The cleaner's notes (what was missing, what needs a look)."
    )
    started_at = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["scheduled_for", "window_start"]
        indexes = [
            models.Index(fields=["tenant", "scheduled_for", "status"]),
            models.Index(fields=["property", "scheduled_for"]),
            models.Index(fields=["assignee", "scheduled_for"]),
        ]

    def __str__(self) -> str:
        return f"Cleaning {self.property} {self.scheduled_for}"


class CleaningRun(TenantOwned):
    """The claim of one property's daily cleaning run: one row per (property, local date)."""

    property = models.ForeignKey(Property, on_delete=models.CASCADE, related_name="+")
    date = models.DateField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["property", "date"], name="cleaning_run_unique_day")
        ]

    def __str__(self) -> str:
        return f"Cleaning run {self.property_id} {self.date}"


class MaintenancePlan(TenantOwned):
    """Recurring maintenance: a request is opened every ``every_days`` (by beat)."""

    property = models.ForeignKey(
        Property, on_delete=models.CASCADE, related_name="maintenance_plans"
    )
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    priority = models.CharField(
        max_length=10, choices=MaintenancePriority.choices, default=MaintenancePriority.NORMAL
    )
    every_days = models.PositiveIntegerField(validators=[MinValueValidator(1)], default=90)
    next_due = models.DateField(help_text="Property-local date the next request is opened.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["next_due"]
        indexes = [models.Index(fields=["is_active", "next_due"])]

    def __str__(self) -> str:
        return f"{self.title} every {self.every_days} days ({self.property})"


def maintenance_photo_path(instance: MaintenanceRequest, filename: str) -> str:
    return f"maintenance/{instance.tenant_id}/{filename}"


class MaintenanceRequest(TenantOwned):
    property = models.ForeignKey(
        Property, on_delete=models.PROTECT, related_name="maintenance_requests"
    )
    booking = models.ForeignKey(
        Booking,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="maintenance_requests",
    )
    plan = models.ForeignKey(
        MaintenancePlan, on_delete=models.SET_NULL, null=True, blank=True, related_name="requests"
    )
    due_on = models.DateField(null=True, blank=True)
    reported_by = models.CharField(max_length=10, choices=ReportedBy.choices)
    reporter = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    priority = models.CharField(
        max_length=10, choices=MaintenancePriority.choices, default=MaintenancePriority.NORMAL
    )
    # FileField, not ImageField: no Pillow dependency; the admin accepts any upload.
    photo = models.FileField(upload_to=maintenance_photo_path, blank=True)
    status = models.CharField(
        max_length=12, choices=MaintenanceStatus.choices, default=MaintenanceStatus.OPEN
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="maintenance_requests",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "status", "priority"])]
        constraints = [
            # A plan opens at most one request per due date, however often beat runs.
            models.UniqueConstraint(
                fields=["plan", "due_on"],
                name="maintenance_unique_plan_due",
                condition=models.Q(plan__isnull=False),
            )
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.property})"
