"""Per-queue and per-task counters and runtimes, recorded by workers in Redis.

Worker signals (connected in ``pms.monitoring.signals``) add, per finished task
run, one count to the minute's bucket of its queue (ok / failed / retried) and
one count to a runtime histogram of its task. Buckets are hashes keyed by the
minute, expiring after a little over an hour, so the page reads at most 61
small hashes for "last 5 minutes" and "last hour" and percentiles come from the
histogram (accurate to the bucket bounds, which is what an operator needs).

Workers count in memory (``run_counts``) and write the sums once a second per
process, not a Redis round trip per task: at a few hundred tasks a second that
round trip was a tenth of a one-insert task's cost (``make bench-pipeline``).
A process killed with ``kill -9`` loses at most its last second of counts.
"""

from __future__ import annotations

import bisect
import logging
import os
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import redis

from pms.pipeline.redis_client import MONITORING_PREFIX, redis_client

logger = logging.getLogger(__name__)

PREFIX = MONITORING_PREFIX
BUCKET_TTL_SECONDS = 2 * 3600
# Runtime histogram upper bounds, seconds (log-ish scale); the last bucket is open.
RUNTIME_BOUNDS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120,
)  # fmt: skip
OUTCOMES = ("ok", "failed", "retried")


def _minute(now: float) -> int:
    return int(now // 60)


def counts_key(minute: int) -> str:
    return f"{PREFIX}:counts:{minute}"


def runtime_key(minute: int) -> str:
    return f"{PREFIX}:runtime:{minute}"


def runtime_bucket(seconds: float) -> int:
    return bisect.bisect_left(RUNTIME_BOUNDS, seconds)


def _run_fields(
    *, queue: str, task_name: str, outcome: str, runtime: float | None, now: float
) -> list[tuple[str, str]]:
    """The (hash, field) pairs one finished run adds one to."""
    minute = _minute(now)
    fields = [(counts_key(minute), f"{queue}|{outcome}")]
    if runtime is not None:
        fields.append((runtime_key(minute), f"{task_name}|{runtime_bucket(runtime)}"))
    return fields


def _write(counts: Counter[tuple[str, str]]) -> None:
    """Add the counts to their buckets, one round trip. Best effort: monitoring never
    fails a task."""
    try:
        with redis_client().pipeline(transaction=False) as pipe:
            for (key, field_name), count in counts.items():
                pipe.hincrby(key, field_name, count)
            for key in {key for key, _ in counts}:
                pipe.expire(key, BUCKET_TTL_SECONDS)
            pipe.execute()
    except redis.RedisError:
        logger.warning("could not record task stats (%d counts dropped)", sum(counts.values()))


def record_run(
    *, queue: str, task_name: str, outcome: str, runtime: float | None, now: float | None = None
) -> None:
    """Count one finished run now (workers count through ``run_counts`` instead)."""
    fields = _run_fields(
        queue=queue,
        task_name=task_name,
        outcome=outcome,
        runtime=runtime,
        now=now if now is not None else time.time(),
    )
    _write(Counter(fields))


FLUSH_INTERVAL_SECONDS = 1.0


class RunCounts:
    """Finished runs counted in this process, written to Redis in one round trip a second."""

    def __init__(self, interval: float = FLUSH_INTERVAL_SECONDS) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()
        self._flusher_pid: int | None = None

    def add(
        self, *, queue: str, task_name: str, outcome: str, runtime: float | None, now: float
    ) -> None:
        fields = _run_fields(
            queue=queue, task_name=task_name, outcome=outcome, runtime=runtime, now=now
        )
        with self._lock:
            self._counts.update(fields)
            if self._flusher_pid != os.getpid():
                # First count in this process (a forked pool child starts without the
                # parent's thread): start its flusher.
                self._flusher_pid = os.getpid()
                threading.Thread(target=self._flush_forever, name="task-stats", daemon=True).start()

    def flush(self) -> None:
        """Write what was counted since the last flush."""
        with self._lock:
            counts, self._counts = self._counts, Counter()
        if counts:
            _write(counts)

    def _flush_forever(self) -> None:
        while True:
            time.sleep(self.interval)
            self.flush()


run_counts = RunCounts()


@dataclass
class QueueRates:
    processed: int = 0
    failed: int = 0
    retried: int = 0

    @property
    def failure_rate(self) -> float | None:
        """Percent of finished runs that failed for good (retries are not failures)."""
        finished = self.processed
        return 100.0 * self.failed / finished if finished else None


@dataclass
class TaskRuntime:
    task_name: str
    runs: int
    p50: float | None
    p95: float | None


@dataclass
class TaskStats:
    last_5_minutes: dict[str, QueueRates] = field(default_factory=dict)
    last_hour: dict[str, QueueRates] = field(default_factory=dict)
    runtimes: list[TaskRuntime] = field(default_factory=list)
    available: bool = True


def _percentile(histogram: dict[int, int], fraction: float) -> float | None:
    total = sum(histogram.values())
    if not total:
        return None
    rank = fraction * total
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            # Report the bucket's upper bound (the open last bucket: its lower bound).
            return RUNTIME_BOUNDS[min(bucket, len(RUNTIME_BOUNDS) - 1)]
    return RUNTIME_BOUNDS[-1]


def read_task_stats(now: float | None = None) -> TaskStats:
    current = _minute(now if now is not None else time.time())
    minutes = list(range(current - 59, current + 1))
    try:
        with redis_client().pipeline(transaction=False) as pipe:
            for minute in minutes:
                pipe.hgetall(counts_key(minute))
            for minute in minutes:
                pipe.hgetall(runtime_key(minute))
            replies = pipe.execute()
    except redis.RedisError:
        logger.warning("could not read task stats", exc_info=True)
        return TaskStats(available=False)
    stats = TaskStats()
    for index, minute in enumerate(minutes):
        for raw_field, raw_value in replies[index].items():
            queue, _, outcome = raw_field.decode().rpartition("|")
            windows = [stats.last_hour]
            if minute > current - 5:
                windows.append(stats.last_5_minutes)
            for window in windows:
                rates = window.setdefault(queue, QueueRates())
                value = int(raw_value)
                if outcome in ("ok", "failed"):
                    rates.processed += value
                if outcome == "failed":
                    rates.failed += value
                elif outcome == "retried":
                    rates.retried += value
    histograms: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for reply in replies[len(minutes) :]:
        for raw_field, raw_value in reply.items():
            task_name, _, bucket = raw_field.decode().rpartition("|")
            histograms[task_name][int(bucket)] += int(raw_value)
    stats.runtimes = sorted(
        (
            TaskRuntime(
                task_name=name,
                runs=sum(histogram.values()),
                p50=_percentile(histogram, 0.5),
                p95=_percentile(histogram, 0.95),
            )
            for name, histogram in histograms.items()
        ),
        key=lambda runtime: runtime.task_name,
    )
    return stats


def forget_task_stats() -> None:
    """Delete every bucket (tests, or an operator resetting the counters)."""
    client = redis_client()
    keys = list(client.scan_iter(match=f"{PREFIX}:counts:*", count=500))
    keys += list(client.scan_iter(match=f"{PREFIX}:runtime:*", count=500))
    if keys:
        client.delete(*keys)


def read_task_stats_for_minute(minute: int) -> dict[str, QueueRates]:
    """Counts of one minute per queue (what a sample stores as throughput)."""
    try:
        raw = redis_client().hgetall(counts_key(minute))
    except redis.RedisError:
        return {}
    rates: dict[str, QueueRates] = {}
    for raw_field, raw_value in raw.items():
        text = raw_field.decode() if isinstance(raw_field, bytes) else raw_field
        queue, _, outcome = text.rpartition("|")
        queue_rates = rates.setdefault(queue, QueueRates())
        if outcome in ("ok", "failed"):
            queue_rates.processed += int(raw_value)
        if outcome == "failed":
            queue_rates.failed += int(raw_value)
        elif outcome == "retried":
            queue_rates.retried += int(raw_value)
    return rates
