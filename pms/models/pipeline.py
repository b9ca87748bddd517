"""The event pipeline's tables: events, deliveries, failed tasks, fair work items."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from pms.choices import DeliveryStatus, FailedTaskStatus
from tenants.models import Tenant


class AggregateSequence(models.Model):
    """Last event sequence per aggregate, bumped with an atomic upsert (pms.pipeline.publishing)."""

    aggregate_type = models.CharField(max_length=50)
    aggregate_id = models.CharField(max_length=64)
    last_sequence = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["aggregate_type", "aggregate_id"], name="aggregate_sequence_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.aggregate_type}:{self.aggregate_id} @{self.last_sequence}"


class DomainEvent(models.Model):
    """An outbox row, written in the same transaction as the state change it describes."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    aggregate_type = models.CharField(max_length=50)
    aggregate_id = models.CharField(max_length=64)
    sequence = models.PositiveBigIntegerField()
    event_type = models.CharField(max_length=100, db_index=True)
    payload = models.JSONField(encoder=DjangoJSONEncoder, default=dict)
    actor = models.CharField(max_length=150, blank=True, help_text="Who caused it (audit).")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["aggregate_type", "aggregate_id", "sequence"], name="event_unique_sequence"
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.aggregate_type}:{self.aggregate_id} #{self.sequence}"


class EventDelivery(models.Model):
    """One (event, handler) delivery: the relay's work list and the processed-event ledger.

    ``status=done`` with ``completed_at`` is written in the same transaction as
    the handler's effect, under a row lock, so an effect is applied at most once.
    """

    event = models.ForeignKey(DomainEvent, on_delete=models.CASCADE, related_name="deliveries")
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    handler = models.CharField(max_length=100)
    queue = models.CharField(max_length=50)
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    publish_count = models.PositiveIntegerField(default=0)
    due_at = models.DateTimeField(help_text="When the relay re-publishes it if still pending.")
    last_published_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "event deliveries"
        constraints = [
            models.UniqueConstraint(fields=["event", "handler"], name="delivery_unique_handler")
        ]
        indexes = [
            # The relay scans only pending rows; done rows (the vast majority) are not in it.
            models.Index(
                fields=["due_at"],
                name="delivery_pending_due",
                condition=models.Q(status=DeliveryStatus.PENDING),
            ),
            # The outbox publisher's work list: pending rows nobody has published yet.
            models.Index(
                fields=["id"],
                name="delivery_unpublished",
                condition=models.Q(status=DeliveryStatus.PENDING, last_published_at__isnull=True),
            ),
            models.Index(fields=["tenant", "status"]),
        ]

    def __str__(self) -> str:
        return f"{self.handler} <- {self.event_id}"


class FailedTask(models.Model):
    """A task that exhausted its retries or failed permanently, for staff to act on."""

    task_id = models.CharField(max_length=255, unique=True)
    task_name = models.CharField(max_length=255, db_index=True)
    queue = models.CharField(max_length=50, blank=True, db_index=True)
    args = models.JSONField(encoder=DjangoJSONEncoder, default=list)
    kwargs = models.JSONField(encoder=DjangoJSONEncoder, default=dict)
    tenant = models.ForeignKey(
        Tenant, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    event = models.ForeignKey(
        DomainEvent, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    delivery = models.ForeignKey(
        EventDelivery, on_delete=models.SET_NULL, null=True, blank=True, related_name="failures"
    )
    exception_class = models.CharField(max_length=255, db_index=True)
    exception_message = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=1, help_text="Runs before it was given up.")
    failure_count = models.PositiveIntegerField(default=1, help_text="Times it ended here.")
    first_failed_at = models.DateTimeField()
    last_failed_at = models.DateTimeField(db_index=True)
    status = models.CharField(
        max_length=10, choices=FailedTaskStatus.choices, default=FailedTaskStatus.OPEN
    )
    acted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    acted_at = models.DateTimeField(null=True, blank=True)
    action_note = models.TextField(blank=True)
    alerted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_failed_at"]
        permissions = [("act_on_failedtask", "Can retry, resolve or discard failed tasks")]
        indexes = [models.Index(fields=["status", "tenant"])]

    def __str__(self) -> str:
        return f"{self.task_name} [{self.task_id}]"


class FailedTaskAction(models.Model):
    """Audit trail: every staff action and every automatic state change of a FailedTask."""

    failed_task = models.ForeignKey(FailedTask, on_delete=models.CASCADE, related_name="actions")
    action = models.CharField(max_length=20)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.action} by {self.user or 'system'} at {self.created_at:%Y-%m-%d %H:%M}"


class FairWorkItem(models.Model):
    """Bulk work waiting for its tenant's share of the workers (see pms.pipeline.fairness)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    scope = models.CharField(max_length=50, help_text="Which share it counts against, e.g. sync.")
    task_name = models.CharField(max_length=200)
    args = models.JSONField(encoder=DjangoJSONEncoder, default=list)
    queue = models.CharField(max_length=50)
    dedupe_key = models.CharField(max_length=200, blank=True)
    lane = models.CharField(
        max_length=300,
        blank=True,
        help_text="The remote endpoint it talks to (scheme://host:port), capped and "
        "circuit-broken per tenant; blank: no remote endpoint.",
    )
    task_id = models.CharField(
        max_length=255, blank=True, help_text="Fixed Celery task id (blank: a fresh one)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    dispatch_count = models.PositiveIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # The dispatcher reads only unfinished items.
            models.Index(
                fields=["tenant", "scope", "id"],
                name="fairwork_open",
                condition=models.Q(finished_at__isnull=True),
            ),
            models.Index(
                fields=["scope", "dedupe_key"],
                name="fairwork_waiting_key",
                condition=models.Q(dispatched_at__isnull=True, finished_at__isnull=True),
            ),
            # Sweeps ask "is this row's work already promised (waiting or in flight)?".
            models.Index(
                fields=["scope", "dedupe_key"],
                name="fairwork_open_key",
                condition=models.Q(finished_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.task_name}{self.args} (tenant {self.tenant_id})"


class EndpointCircuit(models.Model):
    """Health of one tenant's remote endpoint: a circuit breaker (pms.pipeline.endpoints).

    Closed: work to the endpoint is admitted up to ``FAIR_INFLIGHT_PER_ENDPOINT`` at a
    time. After ``ENDPOINT_BREAKER_FAILURES`` failed or slow calls in a row it opens:
    nothing more is admitted until ``open_until``; then one call probes it (half open).
    A success closes it; a failed probe opens it again, for twice as long.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    lane = models.CharField(max_length=300, help_text="scheme://host:port")
    consecutive_failures = models.PositiveIntegerField(default=0)
    times_opened = models.PositiveIntegerField(
        default=0, help_text="Opens since the last success (each doubles the wait)."
    )
    open_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "lane"], name="endpoint_circuit_unique")
        ]

    def __str__(self) -> str:
        return f"{self.lane} (tenant {self.tenant_id})"

    @property
    def state(self) -> str:
        if self.consecutive_failures < settings.ENDPOINT_BREAKER_FAILURES:
            return "closed"
        if self.open_until is not None and self.open_until > timezone.now():
            return "open"
        return "half-open"
