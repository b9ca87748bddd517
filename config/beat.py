"""Default periodic tasks, created (idempotently) by ``manage.py setup_periodic_tasks``.

Each carries ``expires`` shorter than its period, so after downtime the backlog
of ticks does not pile up. Staff can edit or pause them in the
django-celery-beat admin; the command does not undo a pause.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PeriodicSpec:
    name: str
    task: str
    every_seconds: int
    expires_seconds: int
    description: str


DEFAULT_PERIODIC_TASKS: tuple[PeriodicSpec, ...] = (
    PeriodicSpec(
        "outbox relay",
        "pms.tasks.relay_outbox",
        5,
        4,
        "Re-publish event deliveries not completed within their deadline.",
    ),
    PeriodicSpec(
        "fair dispatch",
        "pms.tasks.fair_dispatch",
        5,
        4,
        "Admit waiting bulk work (imports, pushes, webhooks, batch messages, maintenance) "
        "within each tenant's share and each endpoint's lane.",
    ),
    PeriodicSpec(
        "purge idempotency keys",
        "bookings.tasks.purge_idempotency_keys",
        3600,
        3000,
        "Forget Idempotency-Key answers older than IDEMPOTENCY_KEY_TTL_HOURS (24 h).",
    ),
    PeriodicSpec(
        "expire booking requests",
        "bookings.tasks.sweep_expired_requests",
        300,
        240,
        "Decline requests to book nobody answered within their expiry "
        "(BOOKING_REQUEST_EXPIRY_HOURS or the property's own); the guest is told.",
    ),
    PeriodicSpec(
        "failed-task staff alerts",
        "pms.tasks.alert_staff_of_failures",
        60,
        50,
        "Email staff a digest of failed tasks not alerted yet.",
    ),
    PeriodicSpec(
        "queue health samples",
        "pms.tasks.monitoring_sample_queues",
        30,
        25,
        "Sample depth, oldest age and throughput of every queue for the queue-health charts.",
    ),
    PeriodicSpec(
        "operator alerts",
        "pms.tasks.ops_alerts_evaluate",
        30,
        25,
        "Evaluate the alert rules; email/webhook operators once per incident and on recovery.",
    ),
    PeriodicSpec(
        "queue sample purge",
        "pms.tasks.purge_queue_samples",
        3600,
        3000,
        "Delete queue-health samples older than QUEUE_SAMPLE_RETENTION_HOURS.",
    ),
    PeriodicSpec(
        "channel polls",
        "channelsync.tasks.poll_due_channels",
        30,
        25,
        "Enqueue an iCal import for every channel whose jittered poll time has come.",
    ),
    PeriodicSpec(
        "channel push and webhook sweep",
        "channelsync.tasks.sweep_outbound",
        30,
        25,
        "Re-enqueue channel updates and webhook deliveries still pending past their time.",
    ),
    PeriodicSpec(
        "stale channel check",
        "channelsync.tasks.check_stale_channels",
        300,
        240,
        "Alert managers of channels with no successful sync for 3 poll intervals.",
    ),
    PeriodicSpec(
        "guest message sweep",
        "automation.tasks.sweep_due_messages",
        60,
        50,
        "Send scheduled guest messages whose property-local time has come (claims rows).",
    ),
    PeriodicSpec(
        "daily cleaning run",
        "automation.tasks.sweep_cleaning_runs",
        900,
        600,
        "Send each cleaner their day's list once CLEANING_RUN_LOCAL_HOUR passes locally.",
    ),
    PeriodicSpec(
        "recurring maintenance",
        "automation.tasks.open_due_maintenance",
        3600,
        3000,
        "Open the maintenance requests of recurring plans that are due (property-local).",
    ),
    PeriodicSpec(
        "purge cleaning-run claims",
        "automation.tasks.purge_cleaning_runs",
        86400,
        3600,
        "Delete daily cleaning-run claim rows older than 14 days.",
    ),
)
