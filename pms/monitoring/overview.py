"""One read of everything the page, /metrics and the alert rules look at."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from config.queues import QUEUES
from pms.choices import DeliveryStatus, FailedTaskStatus
from pms.models import EventDelivery, FailedTask
from pms.monitoring.signals import beat_last_tick
from pms.monitoring.task_stats import QueueRates, TaskStats, read_task_stats
from pms.monitoring.topology import (
    BrokerTopology,
    SentinelHealth,
    broker_topology,
    sentinel_health,
)
from pms.monitoring.workers import WorkerInfo, consumers_per_queue, workers_online
from pms.pipeline.broker_stats import queue_depths


@dataclass
class QueueHealth:
    name: str
    purpose: str
    worker_group: str
    depth: int | None
    oldest_age_seconds: float | None
    consumers: int | None
    last_5_minutes: QueueRates
    last_hour: QueueRates
    # RabbitMQ: the oldest age is estimated from the publish log (pms.pipeline.waiting).
    age_estimated: bool = False

    @property
    def has_work_and_no_consumer(self) -> bool:
        return bool(self.depth) and self.consumers == 0


@dataclass
class Overview:
    queues: list[QueueHealth]
    workers: list[WorkerInfo] | None
    task_stats: TaskStats
    beat_last_tick: float | None
    # The broker's nodes and queue replicas (RabbitMQ), Redis' Sentinels.
    broker: BrokerTopology = field(default_factory=lambda: BrokerTopology(configured=False))
    sentinel: SentinelHealth = field(default_factory=lambda: SentinelHealth(configured=False))
    taken_at: float = field(default_factory=time.time)

    @property
    def beat_silent_seconds(self) -> float | None:
        return self.taken_at - self.beat_last_tick if self.beat_last_tick else None


def queue_overview(
    *, app: Any = None, use_worker_cache: bool = True, with_topology: bool = True
) -> Overview:
    """``with_topology``: also read the broker's nodes and replicas and the Sentinels."""
    depths = {d.queue: d for d in queue_depths(app)}
    workers = workers_online(app, use_cache=use_worker_cache)
    consumers = consumers_per_queue(workers)
    stats = read_task_stats()
    queues = []
    for spec in QUEUES:
        depth = depths[spec.name]
        if depth.broker_consumers is not None:
            queue_consumers: int | None = depth.broker_consumers
        else:
            queue_consumers = None if consumers is None else consumers.get(spec.name, 0)
        queues.append(
            QueueHealth(
                name=spec.name,
                purpose=spec.purpose,
                worker_group=spec.worker_group,
                depth=depth.depth,
                oldest_age_seconds=depth.oldest_age_seconds,
                consumers=queue_consumers,
                last_5_minutes=stats.last_5_minutes.get(spec.name, QueueRates()),
                last_hour=stats.last_hour.get(spec.name, QueueRates()),
                age_estimated=depth.age_estimated,
            )
        )
    return Overview(
        queues=queues,
        workers=workers,
        task_stats=stats,
        beat_last_tick=beat_last_tick(),
        broker=broker_topology() if with_topology else BrokerTopology(configured=False),
        sentinel=sentinel_health() if with_topology else SentinelHealth(configured=False),
    )


def open_failed_tasks(queryset: QuerySet[FailedTask] | None = None) -> int:
    queryset = FailedTask.objects.all() if queryset is None else queryset
    return queryset.filter(status__in=[FailedTaskStatus.OPEN, FailedTaskStatus.RETRYING]).count()


def pending_deliveries(queryset: QuerySet[EventDelivery] | None = None) -> dict[str, int]:
    """Pending deliveries, and how many of them are past their relay deadline."""
    queryset = EventDelivery.objects.all() if queryset is None else queryset
    pending = queryset.filter(status=DeliveryStatus.PENDING)
    return {
        "pending": pending.count(),
        "overdue": pending.filter(due_at__lt=timezone.now()).count(),
    }
