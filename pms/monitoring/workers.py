"""Workers online and the queues each consumes (Celery remote control, cached briefly).

A broadcast ``inspect`` waits for its whole timeout, so the answer is cached a
few seconds in the Django cache: the page, /metrics and the alert evaluation
share one round trip.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from celery import current_app
from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

CACHE_KEY = "monitoring:workers"


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    queues: list[str] = field(default_factory=list)


def _inspect(app: Any) -> list[WorkerInfo] | None:
    try:
        inspector = app.control.inspect(timeout=settings.QUEUE_HEALTH_INSPECT_TIMEOUT)
        replies = inspector.active_queues() or {}
    except Exception:
        logger.warning("could not inspect workers", exc_info=True)
        return None
    return sorted(
        (
            WorkerInfo(name=name, queues=sorted(q.get("name", "") for q in queues or []))
            for name, queues in replies.items()
        ),
        key=lambda worker: worker.name,
    )


def workers_online(app: Any = None, *, use_cache: bool = True) -> list[WorkerInfo] | None:
    """Workers that answered, with their queues; None when the broker could not be asked."""
    if use_cache:
        cached = cache.get(CACHE_KEY)
        if cached is not None:
            return [WorkerInfo(name=name, queues=queues) for name, queues in cached]
    workers = _inspect(app or current_app)
    if workers is not None:
        cache.set(
            CACHE_KEY,
            [(w.name, w.queues) for w in workers],
            settings.QUEUE_HEALTH_WORKER_CACHE_SECONDS,
        )
    return workers


def forget_workers() -> None:
    cache.delete(CACHE_KEY)


def consumers_per_queue(workers: list[WorkerInfo] | None) -> dict[str, int] | None:
    if workers is None:
        return None
    counts: dict[str, int] = {}
    for worker in workers:
        for queue in worker.queues:
            counts[queue] = counts.get(queue, 0) + 1
    return counts
