"""Monitoring models. Imported by ``pms.models`` so Django registers them in the pms app."""

from __future__ import annotations

from django.db import models

from config.queues import QUEUES


class AlertKind(models.TextChoices):
    QUEUE_DEPTH = "queue_depth", "Queue deeper than N messages"
    OLDEST_AGE = "oldest_age", "Oldest message older than N seconds"
    NO_CONSUMER = "no_consumer", "Queue with at least N messages and no consumer"
    FAILURE_RATE = "failure_rate", "Failure rate over N % (last 5 minutes)"
    BEAT_SILENT = "beat_silent", "Beat silent for more than N seconds"
    OUTBOX_OVERDUE = "outbox_overdue", "At least N outbox deliveries overdue"
    CHANNEL_STALE = "channel_stale", "At least N channels stale"


class AlertRule(models.Model):
    """One threshold. Defaults come from settings (``manage.py setup_alert_rules``)."""

    kind = models.CharField(max_length=20, choices=AlertKind.choices)
    queue = models.CharField(
        max_length=50,
        blank=True,
        choices=[(spec.name, spec.name) for spec in QUEUES],
        help_text="Only this queue (queue rules); blank: every queue.",
    )
    threshold = models.FloatField(help_text="N in the rule's description.")
    enabled = models.BooleanField(default=True)
    note = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "queue"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "queue"], name="alert_rule_unique_kind_queue")
        ]

    def __str__(self) -> str:
        scope = f" [{self.queue}]" if self.queue else ""
        return f"{self.get_kind_display().replace('N', f'{self.threshold:g}', 1)}{scope}"


class IncidentStatus(models.TextChoices):
    OPEN = "open", "Open"
    RESOLVED = "resolved", "Resolved"


class AlertIncident(models.Model):
    """A rule firing for one subject (a queue, "beat", "outbox", ...), from open to resolved.

    Operators are told once when it opens and once when it resolves, by email
    (``notified_at``, ``recovered_notified_at``) and by webhook
    (``webhook_notified_at``, ``webhook_recovered_at``), each channel tracked on
    its own so a failing webhook never repeats the email. An incident closed
    with a ``resolution_note`` (its rule was disabled) is closed silently. At
    most one open incident per (rule, subject) is a database constraint.
    """

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="incidents")
    subject = models.CharField(max_length=100)
    status = models.CharField(
        max_length=10, choices=IncidentStatus.choices, default=IncidentStatus.OPEN
    )
    message = models.TextField()
    value = models.FloatField(null=True, blank=True, help_text="Measured value when it opened.")
    last_value = models.FloatField(null=True, blank=True)
    opened_at = models.DateTimeField(auto_now_add=True, db_index=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    notified_at = models.DateTimeField(null=True, blank=True)
    recovered_notified_at = models.DateTimeField(null=True, blank=True)
    webhook_notified_at = models.DateTimeField(null=True, blank=True)
    webhook_recovered_at = models.DateTimeField(null=True, blank=True)
    resolution_note = models.CharField(
        max_length=200, blank=True, help_text="Why it closed without a message (rule disabled)."
    )

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "subject"],
                condition=models.Q(status="open"),
                name="alert_incident_one_open_per_subject",
            )
        ]

    def __str__(self) -> str:
        return f"{self.rule.get_kind_display()} - {self.subject} ({self.status})"


class QueueSample(models.Model):
    """All queues at one instant, in one compact row (beat, every ~30 s; purged after a while).

    ``data`` maps queue -> [depth, oldest_age_seconds, processed_last_minute,
    failed_last_minute]; a value is null when it could not be measured.
    """

    taken_at = models.DateTimeField(db_index=True)
    data = models.JSONField(default=dict)

    class Meta:
        ordering = ["-taken_at"]
        verbose_name = "queue health"
        verbose_name_plural = "queue health"
        permissions = [("view_queue_health", "Can view the queue-health page")]

    def __str__(self) -> str:
        return f"sample at {self.taken_at:%Y-%m-%d %H:%M:%S}"
