"""Queue monitoring's tables: samples for the charts, alert rules and their incidents."""

from __future__ import annotations

from django.conf import settings
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
    QUEUE_UNDER_REPLICATED = "under_replicated", "At least N quorum queues under-replicated"
    SENTINEL_QUORUM = "sentinel_quorum", "Redis Sentinels without a quorum"


def default_for_seconds() -> int:
    """A new rule's ``for_seconds``: ``OPS_ALERT_FOR_SECONDS`` at the time it is created."""
    return settings.OPS_ALERT_FOR_SECONDS


class AlertRule(models.Model):
    """One threshold. Defaults come from settings (``manage.py setup_alert_rules``).

    Like Prometheus' ``for:``, a condition must hold for ``for_seconds`` before its
    incident opens and operators are told; until then the incident is pending,
    and one that clears while pending is dropped without a word.
    """

    kind = models.CharField(max_length=20, choices=AlertKind.choices)
    queue = models.CharField(
        max_length=50,
        blank=True,
        choices=[(spec.name, spec.name) for spec in QUEUES],
        help_text="Only this queue (queue rules); blank: every queue.",
    )
    threshold = models.FloatField(help_text="N in the rule's description.")
    for_seconds = models.PositiveIntegerField(
        "for (seconds)",
        default=default_for_seconds,
        help_text=(
            "Open (and notify) only once the condition has held this long; "
            "0: at the first evaluation that sees it."
        ),
    )
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
    # Firing for less than its rule's for_seconds: nobody is told yet.
    PENDING = "pending", "Pending"
    OPEN = "open", "Open"
    RESOLVED = "resolved", "Resolved"


class AlertIncident(models.Model):
    """A rule firing for one subject (a queue, "beat", "outbox", ...), from open to resolved.

    It starts pending (``firing_since``) and opens once the condition has held for
    the rule's ``for_seconds``; a pending incident whose condition clears is deleted
    (nobody was told, so there is nothing to recover from).

    Operators are told once when it opens and once when it resolves, by email
    (``notified_at``, ``recovered_notified_at``) and by webhook
    (``webhook_notified_at``, ``webhook_recovered_at``), each channel tracked on
    its own so a failing webhook never repeats the email. An incident closed
    with a ``resolution_note`` (its rule was disabled) is closed silently. At
    most one pending-or-open incident per (rule, subject) is a database constraint.
    """

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="incidents")
    subject = models.CharField(max_length=100)
    status = models.CharField(
        max_length=10, choices=IncidentStatus.choices, default=IncidentStatus.OPEN
    )
    message = models.TextField()
    value = models.FloatField(null=True, blank=True, help_text="Measured value when it opened.")
    last_value = models.FloatField(null=True, blank=True)
    firing_since = models.DateTimeField(
        null=True, blank=True, help_text="When the condition was first seen (pending from then)."
    )
    last_firing_at = models.DateTimeField(
        null=True, blank=True, help_text="The last evaluation that saw the condition."
    )
    # When it opened (left pending); for a pending incident, when it was created.
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
                condition=models.Q(status__in=["pending", "open"]),
                name="alert_incident_one_active_per_subject",
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
