"""Celery signal receivers for monitoring (infrastructure only), wired in PmsConfig.ready().

- ``before_task_publish``: stamp ``published_at`` in the message headers (the
  oldest-message age reads it back from the broker), overwritten at every
  publish so a retried or re-published message counts from its last publish,
  and when beat publishes a
  periodic task (django-celery-beat adds ``periodic_task_name``), record beat's
  last tick. Recording it at publish time means a silent beat is told apart
  from a stuck worker. On RabbitMQ (which shows no message without delivering
  it) the publish also goes into ``pms.pipeline.waiting``'s log.
- ``task_received`` (worker main process, RabbitMQ only): the message left its
  queue; it leaves the log.
- ``task_prerun`` / ``task_postrun``: per-queue outcome counts and runtimes, summed in
  memory and written once a second (``worker_process_shutdown`` writes the last ones).
- ``post_migrate`` (Django): keep the "operators" group and its permissions.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from celery import signals
from django.db.models.signals import post_migrate

from config.queues import queue_for_routing_key
from pms.monitoring.operators import sync_after_migrate
from pms.monitoring.task_stats import PREFIX, run_counts
from pms.pipeline import waiting
from pms.pipeline.broker_stats import PUBLISHED_AT_HEADER
from pms.pipeline.redis_client import redis_client

logger = logging.getLogger(__name__)

BEAT_TICK_KEY = f"{PREFIX}:beat-last-tick"
_started: dict[str, float] = {}
_OUTCOME_BY_STATE = {"SUCCESS": "ok", "FAILURE": "failed", "RETRY": "retried"}


def stamp_publish_time(
    headers: dict[str, Any] | None = None, routing_key: str | None = None, **kwargs: Any
) -> None:
    if headers is None:
        return
    now = time.time()
    # A retry copies the original headers: count its wait from this publish.
    headers[PUBLISHED_AT_HEADER] = now
    if waiting.logging_enabled():
        waiting.note_published(routing_key, headers, now)
    if headers.get("periodic_task_name"):
        try:
            redis_client().set(BEAT_TICK_KEY, now)
        except redis.RedisError:
            logger.warning("could not record beat's tick")


def beat_last_tick() -> float | None:
    try:
        value = redis_client().get(BEAT_TICK_KEY)
    except redis.RedisError:
        return None
    return float(value) if value is not None else None


def message_received(request: Any = None, **kwargs: Any) -> None:
    if request is not None and waiting.logging_enabled():
        delivery_info = getattr(request, "delivery_info", None) or {}
        waiting.note_received(delivery_info.get("routing_key"), getattr(request, "id", None))


def task_started(task_id: str | None = None, **kwargs: Any) -> None:
    if task_id:
        _started[task_id] = time.monotonic()


def task_finished(
    task_id: str | None = None, task: Any = None, state: str | None = None, **kwargs: Any
) -> None:
    started = _started.pop(task_id, None) if task_id else None
    outcome = _OUTCOME_BY_STATE.get(state or "")
    if task is None or outcome is None:
        return
    delivery_info = getattr(task.request, "delivery_info", None) or {}
    # A message that waited out a countdown in RabbitMQ's delay queues arrives with
    # the delay bits in front of its routing key: count it under its queue.
    routing_key = delivery_info.get("routing_key")
    queue = queue_for_routing_key(routing_key) or routing_key or "?"
    run_counts.add(
        queue=queue,
        task_name=task.name,
        outcome=outcome,
        runtime=time.monotonic() - started if started is not None else None,
        now=time.time(),
    )


def flush_counts(**kwargs: Any) -> None:
    """A worker process ends: write its last counts (pms.monitoring.task_stats.RunCounts)."""
    run_counts.flush()


def connect() -> None:
    signals.before_task_publish.connect(stamp_publish_time, dispatch_uid="pms.monitoring.publish")
    signals.task_received.connect(message_received, dispatch_uid="pms.monitoring.received")
    signals.task_prerun.connect(task_started, dispatch_uid="pms.monitoring.prerun")
    signals.task_postrun.connect(task_finished, dispatch_uid="pms.monitoring.postrun")
    signals.worker_process_shutdown.connect(flush_counts, dispatch_uid="pms.monitoring.flush")
    signals.worker_shutdown.connect(flush_counts, dispatch_uid="pms.monitoring.flush_main")
    post_migrate.connect(sync_after_migrate, dispatch_uid="pms.monitoring.operators_group")
