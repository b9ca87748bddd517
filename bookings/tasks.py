"""Periodic housekeeping of the bookings app. Thin: each calls a service."""

from __future__ import annotations

from celery import shared_task

from bookings.api.idempotency import idempotency_keys_purge
from pms.pipeline.task_base import ReliableTask


@shared_task(name="bookings.tasks.purge_idempotency_keys", base=ReliableTask)
def purge_idempotency_keys() -> int:
    """Delete Idempotency-Key records older than IDEMPOTENCY_KEY_TTL (24 h)."""
    return idempotency_keys_purge()
