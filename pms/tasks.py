"""The pms app's Celery tasks: the pipeline's housekeeping and queue monitoring. Thin:
they call the pipeline and monitoring services.

Task names are stable (beat's schedule rows and FailedTask rows hold them), and
the ones the pipeline sends by name are constants there (``FAIR_DISPATCH_TASK``,
``STAFF_ALERT_TASK``): the pipeline never imports this module.
"""

from __future__ import annotations

import smtplib
import socket
from typing import Any

from celery import shared_task

from pms.monitoring.alerts import alert_rules_evaluate
from pms.monitoring.sampling import queue_sample_take, queue_samples_purge
from pms.pipeline.announce import QUEUES, announce
from pms.pipeline.failure_digest import failed_task_alerts_send
from pms.pipeline.failures import STAFF_ALERT_TASK
from pms.pipeline.fairness import FAIR_DISPATCH_TASK
from pms.pipeline.fairness import fair_dispatch as fair_dispatch_pass
from pms.pipeline.relay import relay_due_deliveries
from pms.pipeline.task_base import ReliableTask


@shared_task(name="pms.tasks.relay_outbox", base=ReliableTask, max_retries=0)
def relay_outbox() -> int:
    """Re-publish pending deliveries past their deadline (beat, every few seconds)."""
    return relay_due_deliveries()


@shared_task(
    name=STAFF_ALERT_TASK,
    base=ReliableTask,
    autoretry_for=(smtplib.SMTPException, ConnectionError, socket.timeout, TimeoutError),
)
def alert_staff_of_failures() -> int:
    """Email staff one digest of the failed tasks not alerted yet (batched)."""
    return failed_task_alerts_send()


@shared_task(name="pms.tasks.monitoring_sample_queues", base=ReliableTask, max_retries=0)
def monitoring_sample_queues() -> int:
    """Store one compact sample of every queue for the queue-health charts (beat)."""
    sample = queue_sample_take()
    announce(tenant_id=None, topic=QUEUES)
    return sample.pk


@shared_task(name="pms.tasks.purge_queue_samples", base=ReliableTask, max_retries=0)
def purge_queue_samples() -> int:
    """Delete queue samples older than QUEUE_SAMPLE_RETENTION_HOURS (beat, hourly)."""
    return queue_samples_purge()


@shared_task(name="pms.tasks.ops_alerts_evaluate", base=ReliableTask, max_retries=0)
def ops_alerts_evaluate() -> dict[str, int]:
    """Evaluate the operator alert rules; tell operators of new and recovered incidents."""
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


@shared_task(name=FAIR_DISPATCH_TASK, base=ReliableTask, max_retries=0)
def fair_dispatch(tenant_id: int | None = None) -> int:
    """Admit waiting bulk work within each share and lane: everyone's (beat, a circuit
    half-opening, a kick) or one tenant's (its submits came faster than its inline passes)."""
    return fair_dispatch_pass(tenant_id=tenant_id)
