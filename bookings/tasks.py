"""Periodic housekeeping of the bookings app. Thin: each calls a service."""

from __future__ import annotations

from celery import shared_task

from bookings.api.idempotency import idempotency_keys_purge
from bookings.services import booking_request_expire, booking_requests_submit_expired
from bookings.services.requests import EXPIRE_REQUEST_TASK
from pms.pipeline.task_base import ReliableTask


@shared_task(name="bookings.tasks.purge_idempotency_keys", base=ReliableTask)
def purge_idempotency_keys() -> int:
    """Delete Idempotency-Key records older than IDEMPOTENCY_KEY_TTL (24 h)."""
    return idempotency_keys_purge()


@shared_task(name="bookings.tasks.sweep_expired_requests", base=ReliableTask, max_retries=0)
def sweep_expired_requests() -> int:
    """Beat: submit the automatic decline of every request to book past its expiry."""
    return booking_requests_submit_expired()


@shared_task(name=EXPIRE_REQUEST_TASK, base=ReliableTask)
def expire_booking_request(booking_id: int) -> bool:
    """Decline one expired request (a no-op if it was answered or is gone meanwhile)."""
    return booking_request_expire(booking_id=booking_id)
