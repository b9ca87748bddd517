"""Plain Celery: the honest baseline of ``make bench-pipeline``. Never imported by the product.

A Celery application with nothing of the project in it: no Django, no signals (the
project's statistics, tenant logging, failure records, poison guard), no task events.
What it shares with the project's workers is what the comparison must hold equal:
the broker and its queue declarations (``config.queues.broker_settings``: quorum
queues and confirms on RabbitMQ, the Redis transport options), acks late, reject on
worker lost, prefetch 1, JSON, and one PostgreSQL connection per worker process kept
across tasks (as ``CELERY_DB_REUSE_MAX`` keeps the project's).

Its one task, ``plain.insert``, does what ``bench.bare_insert`` does in the project's
workers (one INSERT into ``bench_bare``, in autocommit), so the two runs differ only
by the project's per-task hooks.

Run by bench/pipeline.py: ``celery -A bench.plain_celery worker -Q <queues> -c N``.
"""

from __future__ import annotations

import os

import psycopg
from celery import Celery, signals

from config.queues import broker_settings

BROKER_URL = os.environ["CELERY_BROKER_URL"]
_BROKER = broker_settings(BROKER_URL, visibility_timeout=3600)

app = Celery("plain", broker=BROKER_URL, set_as_current=False)
app.conf.update(
    task_queues=_BROKER["task_queues"],
    task_default_queue_type=_BROKER["task_default_queue_type"],
    broker_transport_options=_BROKER["broker_transport_options"],
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    task_serializer="json",
    accept_content=["json"],
    worker_send_task_events=False,
    task_send_sent_event=False,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)
if "worker_detect_quorum_queues" in _BROKER:
    app.conf.worker_detect_quorum_queues = _BROKER["worker_detect_quorum_queues"]

_connection: psycopg.Connection | None = None  # one per worker process, kept across tasks


@signals.worker_process_init.connect
def _forget_parent_connection(**kwargs: object) -> None:
    global _connection
    _connection = None  # never share the parent's socket with a forked child


def _db() -> psycopg.Connection:
    global _connection
    if _connection is None or _connection.closed:
        _connection = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
    return _connection


@app.task(name="plain.insert", ignore_result=True)
def plain_insert(n: int, enqueued_at: float) -> None:
    _db().execute(
        "INSERT INTO bench_bare (n, enqueued_at, started_at) VALUES (%s, %s, clock_timestamp())",
        [n, enqueued_at],
    )
