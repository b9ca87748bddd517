"""Compact samples of every queue for the charts (one row per sample), and their purge."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import IntegerField, Value
from django.db.models.functions import Extract, Floor
from django.utils import timezone

from pms.models.monitoring import QueueSample
from pms.monitoring.task_stats import read_task_stats_for_minute
from pms.pipeline.broker_stats import queue_depths


def queue_sample_take() -> QueueSample:
    depths = queue_depths()
    minute_counts = read_task_stats_for_minute(int(time.time() // 60) - 1)
    data = {}
    for depth in depths:
        rates = minute_counts.get(depth.queue)
        age = round(depth.oldest_age_seconds, 1) if depth.oldest_age_seconds is not None else None
        data[depth.queue] = [
            depth.depth,
            age,
            rates.processed if rates else 0,
            rates.failed if rates else 0,
        ]
    return QueueSample.objects.create(taken_at=timezone.now(), data=data)


def queue_samples_purge(*, now: datetime | None = None) -> int:
    cutoff = (now or timezone.now()) - timedelta(hours=settings.QUEUE_SAMPLE_RETENTION_HOURS)
    deleted, _ = QueueSample.objects.filter(taken_at__lt=cutoff).delete()
    return deleted


def queue_samples_since(*, hours: float, max_points: int = 240) -> list[QueueSample]:
    """Samples of the last ``hours``, thinned in SQL to about ``max_points`` for a chart.

    When the window holds more, it is cut into ``max_points`` equal buckets and
    PostgreSQL returns the first sample of each (``DISTINCT ON``), so 48 hours at
    one sample per 30 s loads ~240 rows, not ~5,760.
    """
    since = timezone.now() - timedelta(hours=hours)
    window = QueueSample.objects.filter(taken_at__gte=since)
    if window.count() <= max_points:
        return list(window.order_by("taken_at"))
    bucket_seconds = max(hours * 3600 / max(max_points, 1), 1.0)
    bucket = Floor(
        (Extract("taken_at", "epoch") - since.timestamp()) / Value(bucket_seconds),
        output_field=IntegerField(),
    )
    return list(window.annotate(bucket=bucket).order_by("bucket", "taken_at").distinct("bucket"))
