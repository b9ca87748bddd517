"""The pipeline's invariant, checked on demand.

Every committed event delivery is either applied exactly once (``done``, the
ledger), or visible for review (``failed`` with an open FailedTask row), or still
in flight (``pending`` within its deadline). Anything else is not ok, each kind
counted on its own:
- ``overdue``: pending past its deadline + grace (the relay should have re-sent it);
- ``failed_without_review``: failed without a FailedTask row;
- ``failed_review_closed``: failed, and every FailedTask of it was resolved or
  discarded, yet the effect was never applied (a staff retry that succeeds makes
  the delivery ``done``);
- ``pending_without_handler``: pending for a handler that no longer exists (the
  relay turns these into FailedTasks; until it has, they are counted here);
- ``republished_unapplied``: pending after ``RECONCILE_MAX_PUBLISHES`` publishes
  (a queue no worker consumes, a message that is dropped every time);
- ``events_without_deliveries``: an event of a subscribed type with no delivery rows.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from pms.choices import DeliveryStatus, FailedTaskStatus
from pms.models import DomainEvent, EventDelivery, FailedTask
from pms.pipeline.registry import all_handlers
from pms.pipeline.relay import relay_due_deliveries


@dataclass(frozen=True)
class ReconcileReport:
    events: int
    deliveries: int
    applied: int
    failed_for_review: int
    in_flight: int
    overdue: int
    failed_without_review: int
    failed_review_closed: int
    pending_without_handler: int
    republished_unapplied: int
    events_without_deliveries: int
    open_failed_tasks: int

    @property
    def lost(self) -> int:
        return (
            self.overdue
            + self.failed_without_review
            + self.failed_review_closed
            + self.pending_without_handler
            + self.republished_unapplied
            + self.events_without_deliveries
        )

    @property
    def ok(self) -> bool:
        return self.lost == 0

    @property
    def settled(self) -> bool:
        return self.ok and self.in_flight == 0

    def as_dict(self) -> dict[str, int | bool]:
        return {**asdict(self), "lost": self.lost, "ok": self.ok}


def reconcile(
    *, tenant_id: int | None = None, grace: timedelta = timedelta(minutes=2)
) -> ReconcileReport:
    deliveries = EventDelivery.objects.all()
    events = DomainEvent.objects.all()
    failed_tasks = FailedTask.objects.all()
    if tenant_id is not None:
        deliveries = deliveries.filter(tenant_id=tenant_id)
        events = events.filter(tenant_id=tenant_id)
        failed_tasks = failed_tasks.filter(tenant_id=tenant_id)
    now = timezone.now()
    known_handlers = sorted(h.name for h in all_handlers() if h.task is not None)
    max_publishes = settings.RECONCILE_MAX_PUBLISHES
    reviews = FailedTask.objects.filter(delivery=OuterRef("pk"))
    open_review = reviews.filter(status__in=[FailedTaskStatus.OPEN, FailedTaskStatus.RETRYING])
    pending = Q(status=DeliveryStatus.PENDING)
    handled = Q(handler__in=known_handlers)
    live = pending & handled & Q(publish_count__lt=max_publishes)
    failed = Q(status=DeliveryStatus.FAILED)
    counts = deliveries.annotate(reviewed=Exists(reviews), open=Exists(open_review)).aggregate(
        total=Count("pk"),
        applied=Count("pk", filter=Q(status=DeliveryStatus.DONE)),
        failed_reviewed=Count("pk", filter=failed & Q(open=True)),
        failed_closed=Count("pk", filter=failed & Q(reviewed=True, open=False)),
        failed_unreviewed=Count("pk", filter=failed & Q(reviewed=False)),
        in_flight=Count("pk", filter=live & Q(due_at__gt=now - grace)),
        overdue=Count("pk", filter=live & Q(due_at__lte=now - grace)),
        without_handler=Count("pk", filter=pending & ~handled),
        republished=Count("pk", filter=pending & handled & Q(publish_count__gte=max_publishes)),
    )
    subscribed_types = sorted({t for h in all_handlers() for t in h.event_types})
    without = (
        events.filter(event_type__in=subscribed_types)
        .annotate(has=Exists(EventDelivery.objects.filter(event=OuterRef("pk"))))
        .filter(has=False)
        .count()
    )
    return ReconcileReport(
        events=events.count(),
        deliveries=counts["total"],
        applied=counts["applied"],
        failed_for_review=counts["failed_reviewed"],
        in_flight=counts["in_flight"],
        overdue=counts["overdue"],
        failed_without_review=counts["failed_unreviewed"],
        failed_review_closed=counts["failed_closed"],
        pending_without_handler=counts["without_handler"],
        republished_unapplied=counts["republished"],
        events_without_deliveries=without,
        open_failed_tasks=failed_tasks.filter(status__in=["open", "retrying"]).count(),
    )


def reconcile_until_settled(
    *, timeout: float, tenant_id: int | None = None, relay: bool = True, poll: float = 0.25
) -> ReconcileReport:
    """Wait (running the relay) until nothing is in flight, or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        report = reconcile(tenant_id=tenant_id)
        if report.settled or time.monotonic() >= deadline:
            return report
        if relay:
            relay_due_deliveries()
        time.sleep(poll)
