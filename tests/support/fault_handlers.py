"""Event handlers that exist only for the tests: they fail, hang or die on demand.

Loaded into the test worker with ``celery worker --include`` and imported by the
test process, so both registries agree. Their effect is a row in
``test_effect``, a plain table with no unique key: a duplicated effect would
show as two rows, so the exactly-once assertions can fail.

Control keys live in the main Redis (REDIS_URL), not the broker, so killing or
flushing the broker does not reset them.
"""

from __future__ import annotations

import os
import signal
import time

from celery import shared_task
from django.db import connection

from pms.errors import DomainError
from pms.models import DomainEvent
from pms.pipeline.errors import PermanentError, TransientError
from pms.pipeline.redis_client import redis_client
from pms.pipeline.registry import event_handler
from pms.pipeline.task_base import ReliableTask

PROBE_EVENT = "test.probe"
EFFECT_TABLE_SQL = """
CREATE TABLE IF NOT EXISTS test_effect (
    event_id uuid NOT NULL,
    handler text NOT NULL,
    pid integer NOT NULL,
    backend_pid integer NOT NULL DEFAULT pg_backend_pid(),
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


def control_key(name: str, event_id: object) -> str:
    return f"pms-test:{name}:{event_id}"


@event_handler(PROBE_EVENT, queue="bookings", name="tests.effect")
def record_effect(event: DomainEvent) -> None:
    mode = event.payload.get("mode", "ok")
    client = redis_client()
    if mode == "transient" and client.exists(control_key("fault", event.id)):
        raise TransientError("simulated remote 503")
    if mode == "permanent" and client.exists(control_key("fault", event.id)):
        raise PermanentError("simulated bad data")
    if mode == "refused" and client.exists(control_key("fault", event.id)):
        raise DomainError("invalid", "simulated refusal by a service")
    if mode == "slow_once" and client.set(control_key("slow", event.id), 1, nx=True, ex=300):
        client.set(control_key("pid", event.id), os.getpid(), ex=300)
        time.sleep(60)  # the test kills this process meanwhile
    if mode == "poison":
        client.incr(control_key("poison-starts", event.id))
        os.kill(os.getpid(), signal.SIGKILL)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO test_effect (event_id, handler, pid) VALUES (%s, %s, %s)",
            [str(event.id), "tests.effect", os.getpid()],
        )


@event_handler(PROBE_EVENT, queue="accounting", name="tests.second_effect")
def record_second_effect(event: DomainEvent) -> None:
    """A second subscriber on another queue: one event, two deliveries."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO test_effect (event_id, handler, pid) VALUES (%s, %s, %s)",
            [str(event.id), "tests.second_effect", os.getpid()],
        )


@shared_task(name="tests.fair_work", base=ReliableTask)
def fair_work(label: str) -> str:
    """Bulk work for the fairness tests: records the order in which items finish."""
    time.sleep(0.05)
    redis_client().rpush("pms-test:fair-order", label)
    return label
