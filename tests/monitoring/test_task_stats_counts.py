"""Workers sum their task counts in memory and write them once a second (RunCounts)."""

from __future__ import annotations

import time

from pms.monitoring.task_stats import RunCounts, read_task_stats
from testkit.processes import wait_until


def test_counts_reach_redis_on_flush_not_per_task():
    counts = RunCounts(interval=3600)  # no flush by the thread during the test
    now = time.time()
    for outcome in ("ok", "ok", "failed", "retried"):
        counts.add(queue="payments", task_name="pay", outcome=outcome, runtime=0.02, now=now)
    assert "payments" not in read_task_stats().last_5_minutes
    counts.flush()
    rates = read_task_stats().last_5_minutes["payments"]
    assert (rates.processed, rates.failed, rates.retried) == (3, 1, 1)
    (pay,) = [runtime for runtime in read_task_stats().runtimes if runtime.task_name == "pay"]
    assert pay.runs == 4
    counts.flush()  # nothing new: nothing added twice
    assert read_task_stats().last_5_minutes["payments"].processed == 3


def test_the_flusher_writes_without_another_task_arriving():
    counts = RunCounts(interval=0.05)
    counts.add(queue="bookings", task_name="b", outcome="ok", runtime=None, now=time.time())
    rates = wait_until(
        lambda: read_task_stats().last_5_minutes.get("bookings"), 5, what="the flush"
    )
    assert rates.processed == 1
