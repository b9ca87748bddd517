"""Automation tasks: thin wrappers that take ids, call a service, exit quietly.

Routing (config.queues): ``send_*`` -> messaging, the rest -> automation; fair work
items name their queue (batch message sends: ``messaging_batch``).
"""

from __future__ import annotations

import logging
import smtplib
from typing import Any

from celery import shared_task

from automation.services import (
    cleaning_runs_claim_due,
    cleaning_runs_purge,
    maintenance_plans_open_tenant,
    maintenance_plans_submit_due,
    outbound_message_send,
)
from automation.services.maintenance import MAINTENANCE_OPEN_TASK
from automation.services.outbound import SEND_TASK, outbound_messages_send_due
from pms.pipeline.task_base import ReliableTask

logger = logging.getLogger(__name__)


@shared_task(
    name=SEND_TASK,
    base=ReliableTask,
    bind=True,
    autoretry_for=(*ReliableTask.autoretry_for, smtplib.SMTPException, OSError),
)
def send_outbound_message(self: Any, message_id: int) -> str:
    """Send one recorded email/SMS, at most once (see automation.services.outbound)."""
    final_attempt = (self.request.retries or 0) >= (self.max_retries or 0)
    return outbound_message_send(message_id=message_id, final_attempt=final_attempt)


@shared_task(name="automation.tasks.sweep_due_messages", base=ReliableTask, max_retries=0)
def sweep_due_messages() -> int:
    """Beat, every minute: claim due scheduled messages (and lost sends), enqueue them."""
    return outbound_messages_send_due()


@shared_task(name="automation.tasks.sweep_cleaning_runs", base=ReliableTask, max_retries=0)
def sweep_cleaning_runs() -> int:
    """Beat, every 15 minutes: each property's daily cleaning lists once its local hour passed."""
    return len(cleaning_runs_claim_due())


@shared_task(name="automation.tasks.open_due_maintenance", base=ReliableTask, max_retries=0)
def open_due_maintenance() -> int:
    """Beat, hourly: submit each tenant's due recurring maintenance plans as fair work."""
    return maintenance_plans_submit_due()


@shared_task(name=MAINTENANCE_OPEN_TASK, base=ReliableTask)
def open_tenant_maintenance(tenant_id: int) -> int:
    """One tenant's turn: open a batch of its due plans (the next batch is submitted)."""
    return maintenance_plans_open_tenant(tenant_id=tenant_id)


@shared_task(name="automation.tasks.purge_cleaning_runs", base=ReliableTask, max_retries=0)
def purge_cleaning_runs() -> int:
    """Beat, daily: forget cleaning-run claims older than two weeks."""
    return cleaning_runs_purge()
