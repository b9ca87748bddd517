"""Event handlers that exist only for the fault-injection runs (bench/faults.py).

Loaded into the bench workers with ``celery worker --include bench.fault_handlers``
and imported by the bench process before it creates anything, so both
registries agree. Never imported by the application.

- ``bench.booking_effect`` subscribes to ``booking.created`` and writes one row
  into ``bench_effect``, a plain table with no unique key: a booking delivery
  applied twice shows as two rows, so the duplicate count can fail.
- ``bench.poison`` handles ``bench.poison`` events by SIGKILLing its own process,
  every time: the poison guard (pms.pipeline.task_base) must park it in FailedTask.
"""

from __future__ import annotations

import os
import signal
import uuid

from django.db import connection, transaction

from bookings.events import BOOKING_CREATED
from pms.models import DomainEvent
from pms.pipeline.publishing import emit_event
from pms.pipeline.registry import event_handler

POISON_EVENT = "bench.poison"
EFFECT_TABLE_SQL = """
CREATE TABLE IF NOT EXISTS bench_effect (
    event_id uuid NOT NULL,
    handler text NOT NULL,
    pid integer NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


def _record(event: DomainEvent, handler: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO bench_effect (event_id, handler, pid) VALUES (%s, %s, %s)",
            [str(event.id), handler, os.getpid()],
        )


@event_handler(BOOKING_CREATED, queue="bookings", name="bench.booking_effect")
def record_booking_effect(event: DomainEvent) -> None:
    _record(event, "bench.booking_effect")


@event_handler(POISON_EVENT, queue="bookings", name="bench.poison")
def poison(event: DomainEvent) -> None:
    os.kill(os.getpid(), signal.SIGKILL)
    _record(event, "bench.poison")  # never reached


def emit_poison(*, tenant_id: int) -> DomainEvent:
    """Commit one poison event (its outbox rows), as a service would."""
    with transaction.atomic():
        return emit_event(
            tenant_id=tenant_id,
            aggregate_type="bench",
            aggregate_id=uuid.uuid4(),
            event_type=POISON_EVENT,
            payload={"mode": "poison"},
            actor="bench:faults",
        )
