"""Bench-only tasks and one bench-only event handler; never imported by the product.

Loaded into bench workers with ``celery worker --include bench.bare_tasks`` and
imported by the bench process, so both handler registries agree.

- ``bench.bare_insert``: a plain Celery task doing one PostgreSQL insert, the
  baseline the pipeline is compared with. Its first statement records
  ``clock_timestamp()``, so it also gives bare Celery's enqueue-to-start latency.
- handler ``bench.probe`` (event type ``bench.probe``, queue ``bookings``): records
  ``clock_timestamp()`` as its first statement, i.e. when the handler started.
"""

from __future__ import annotations

from celery import shared_task
from django.db import connection

from pms.models import DomainEvent
from pms.pipeline.registry import event_handler

PROBE_EVENT = "bench.probe"

TABLES_SQL = (
    """
    CREATE TABLE IF NOT EXISTS bench_bare (
        id bigserial PRIMARY KEY,
        n integer NOT NULL,
        enqueued_at double precision NOT NULL,
        started_at timestamptz NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS bench_handler_start (
        event_id uuid NOT NULL,
        started_at timestamptz NOT NULL
    )
    """,
)


def create_tables() -> None:
    """Create (or empty) the bench tables."""
    with connection.cursor() as cursor:
        for sql in TABLES_SQL:
            cursor.execute(sql)
        cursor.execute("TRUNCATE bench_bare, bench_handler_start")


@shared_task(name="bench.bare_insert", ignore_result=True)
def bare_insert(n: int, enqueued_at: float) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO bench_bare (n, enqueued_at, started_at) VALUES (%s, %s, clock_timestamp())",
            [n, enqueued_at],
        )


@event_handler(PROBE_EVENT, queue="bookings", name="bench.probe")
def record_handler_start(event: DomainEvent) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO bench_handler_start (event_id, started_at) VALUES (%s, clock_timestamp())",
            [str(event.id)],
        )
