"""Every Celery queue of the product, declared once.

The table is the single source of truth: Celery's ``task_queues`` and
``task_routes`` are built from it, the handler registry refuses a queue that is
not in it, and the queue-health tooling iterates over it. With
``task_create_missing_queues`` off, a task sent to a name that is not here fails
at publish time instead of silently creating a queue that nobody consumes.
"""

from __future__ import annotations

from dataclasses import dataclass

from kombu import Exchange, Queue


@dataclass(frozen=True)
class QueueSpec:
    name: str
    purpose: str
    worker_group: str


QUEUES: tuple[QueueSpec, ...] = (
    QueueSpec("bookings", "booking lifecycle, availability and calendar", "operational"),
    QueueSpec("messaging", "guest email/SMS, manager notifications, threads", "operational"),
    QueueSpec("accounting", "revenue and refund ledger entries", "operational"),
    QueueSpec("default", "housekeeping: outbox relay, queue sampling, purges", "operational"),
    QueueSpec("payments", "payments and refunds, never behind bulk work", "payments"),
    QueueSpec("fallback", "manual-review handling of failed tasks, staff alerts", "payments"),
    QueueSpec("automation", "cleaning runs, reminders, maintenance workflow", "automation"),
    QueueSpec("channelsync", "iCal import/export, channel API pushes, webhooks", "sync"),
    QueueSpec("bulk", "backfills, full resyncs, large imports", "sync"),
)

QUEUE_NAMES: frozenset[str] = frozenset(spec.name for spec in QUEUES)
DEFAULT_QUEUE = "default"

# Task name globs -> queue. Event handler tasks are published with an explicit
# queue taken from the handler registry, so they need no entry here.
ROUTES: dict[str, str] = {
    "pms.tasks.relay_*": "default",
    "pms.tasks.fair_*": "default",
    "pms.tasks.purge_*": "default",
    "pms.tasks.alert_staff_*": "fallback",
    "pms.tasks.probe_*": "default",
    "pms.tasks.monitoring_*": "default",
    # Alerts about stuck queues must not wait behind them: another worker group.
    "pms.tasks.ops_alerts_*": "fallback",
    "bookings.tasks.*": "bookings",
    # Guest and manager messages are operational; the rest of automation is not.
    # Globs are tried in order: the specific one must come first.
    "automation.tasks.send_*": "messaging",
    "automation.tasks.*": "automation",
    "channelsync.tasks.*": "channelsync",
}


def worker_groups() -> dict[str, list[str]]:
    """Queue names per worker group, in table order (used by the Procfile docs and tests)."""
    groups: dict[str, list[str]] = {}
    for spec in QUEUES:
        groups.setdefault(spec.worker_group, []).append(spec.name)
    return groups


def task_queues() -> tuple[Queue, ...]:
    # One direct exchange per queue, routing key = queue name: what kombu would
    # create by default, but declared so it is explicit and identical on
    # Redis and RabbitMQ (where ``x-queue-type`` may be added by settings).
    return tuple(Queue(spec.name, Exchange(spec.name), routing_key=spec.name) for spec in QUEUES)


def task_routes() -> dict[str, dict[str, str]]:
    for queue in ROUTES.values():
        assert queue in QUEUE_NAMES, f"route to undeclared queue {queue!r}"
    return {pattern: {"queue": queue} for pattern, queue in ROUTES.items()}
