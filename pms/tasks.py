"""Housekeeping tasks of the pipeline. Thin: they call services."""

from __future__ import annotations

import smtplib
import socket
from typing import Any

from celery import shared_task

from pms.reliable import ReliableTask


@shared_task(name="pms.tasks.relay_outbox", base=ReliableTask, max_retries=0)
def relay_outbox() -> int:
    """Re-publish pending deliveries past their deadline (beat, every few seconds)."""
    from pms.outbox import relay_due_deliveries

    return relay_due_deliveries()


@shared_task(
    name="pms.tasks.alert_staff_of_failures",
    base=ReliableTask,
    autoretry_for=(smtplib.SMTPException, ConnectionError, socket.timeout, TimeoutError),
)
def alert_staff_of_failures() -> int:
    """Email staff one digest of the failed tasks not alerted yet (batched)."""
    from pms.alerts import failed_task_alerts_send

    return failed_task_alerts_send()


@shared_task(name="pms.tasks.monitoring_sample_queues", base=ReliableTask, max_retries=0)
def monitoring_sample_queues() -> int:
    """Store one compact sample of every queue for the queue-health charts (beat)."""
    from pms.monitoring.sampling import queue_sample_take

    return queue_sample_take().pk


@shared_task(name="pms.tasks.purge_queue_samples", base=ReliableTask, max_retries=0)
def purge_queue_samples() -> int:
    """Delete queue samples older than QUEUE_SAMPLE_RETENTION_HOURS (beat, hourly)."""
    from pms.monitoring.sampling import queue_samples_purge

    return queue_samples_purge()


@shared_task(name="pms.tasks.ops_alerts_evaluate", base=ReliableTask, max_retries=0)
def ops_alerts_evaluate() -> dict[str, int]:
    """Evaluate the operator alert rules; tell operators of new and recovered incidents."""
    from pms.monitoring.alerts import alert_rules_evaluate

    return alert_rules_evaluate()


@shared_task(name="pms.tasks.probe_echo", bind=True, ignore_result=False, acks_late=False)
def probe_echo(self: Any, token: str = "") -> dict[str, Any]:
    """Answer which worker and queue ran it: used by health checks and routing tests."""
    delivery_info = self.request.delivery_info or {}
    return {
        "token": token,
        "hostname": self.request.hostname,
        "queue": delivery_info.get("routing_key"),
        "tenant_id": getattr(self.request, "tenant_id", None),
    }


@shared_task(name="pms.tasks.fair_dispatch", base=ReliableTask, max_retries=0)
def fair_dispatch() -> int:
    """Admit waiting bulk work within each tenant's share (kicked on submit and finish; beat)."""
    from pms.fairness import fair_dispatch as dispatch

    return dispatch()
