"""Automation tasks: thin wrappers that take ids, call a service, exit quietly.

Routing (config.queues): ``send_*`` -> messaging, the rest -> automation.
"""

from __future__ import annotations

import logging
import smtplib
from typing import Any

from celery import shared_task

from pms.reliable import ReliableTask

logger = logging.getLogger(__name__)


@shared_task(
    name="automation.tasks.send_outbound_message",
    base=ReliableTask,
    bind=True,
    autoretry_for=(*ReliableTask.autoretry_for, smtplib.SMTPException, OSError),
)
def send_outbound_message(self: Any, message_id: int) -> str:
    """Send one recorded email/SMS, at most once (see automation.services.outbound)."""
    from automation.services import outbound_message_send

    final_attempt = (self.request.retries or 0) >= (self.max_retries or 0)
    return outbound_message_send(message_id=message_id, final_attempt=final_attempt)


@shared_task(name="automation.tasks.sweep_due_messages", base=ReliableTask, max_retries=0)
def sweep_due_messages() -> int:
    """Beat, every minute: claim due scheduled messages (and lost sends), enqueue them."""
    from automation.services import outbound_messages_claim_due
    from automation.services.outbound import _enqueue

    total = 0
    while True:
        claimed = outbound_messages_claim_due()
        for message_id, tenant_id in claimed:
            # A lost publish is fine: the row is pending with a resend deadline.
            _enqueue(send_outbound_message, message_id, tenant_id)
        total += len(claimed)
        if not claimed or len(claimed) < _batch():
            return total


def _batch() -> int:
    from django.conf import settings

    return int(settings.AUTOMATION_SWEEP_BATCH)


@shared_task(name="automation.tasks.sweep_cleaning_runs", base=ReliableTask, max_retries=0)
def sweep_cleaning_runs() -> int:
    """Beat, every 15 minutes: each property's daily cleaning lists once its local hour passed."""
    from automation.services import cleaning_runs_claim_due

    return len(cleaning_runs_claim_due())


@shared_task(name="automation.tasks.open_due_maintenance", base=ReliableTask, max_retries=0)
def open_due_maintenance() -> int:
    """Beat, hourly: open the requests of recurring maintenance plans that are due."""
    from automation.services import maintenance_plans_open_due

    return maintenance_plans_open_due()


@shared_task(name="automation.tasks.purge_cleaning_runs", base=ReliableTask, max_retries=0)
def purge_cleaning_runs() -> int:
    """Beat, daily: forget cleaning-run claims older than two weeks."""
    from automation.services import cleaning_runs_purge

    return cleaning_runs_purge()
