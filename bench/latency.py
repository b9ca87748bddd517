"""Commit-to-handler-start latency on an idle system, beside bare Celery's enqueue-to-start.

Two runs, one after the other on the same workers, one per ``OUTBOX_PUBLISH`` mode:
``commit`` (this process publishes in its on-commit hook) and ``notify`` (it only
NOTIFYs; the outbox publisher process, started here as in the Procfile, sends).
Each run: 500 events (default) of the bench-only type ``bench.probe``, 10 ms apart,
each emitted with ``pms.pipeline.publishing.emit_event`` inside
``transaction.atomic()`` in this process. The commit timestamp is ``time.time()``
taken right after the atomic block returns (in ``commit`` mode after the publish; the
event's ``created_at`` column, taken before commit, is shown too). The handler
(bench.bare_tasks, loaded into the worker with ``--include``) writes
``clock_timestamp()`` as its first statement: that is "handler started".
No production code is hooked.

In the same run, interleaved with the events (5 ms after each), bare Celery: 500
plain tasks to the same queue and worker; enqueue time taken right before
``apply_async``, start = the task's first statement's ``clock_timestamp()``.
Targets (issue 18): p99 commit -> handler start < 20 ms and <= 1.5x bare Celery's
p99 of the same run.

Run: make bench-latency (or .venv/bin/python -m devstack exec -- .venv/bin/python bench/latency.py)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import (
    bench_environment,
    django_setup,
    flush_broker,
    outbox_publisher,
    percentile,
    workers,
    write_result,
)

# The group that consumes the bookings queue, as in the Procfile.
WORKER_GROUPS = {"operational": ("bookings,accounting,default", 2)}
TARGET_P99_MS = 20.0
TARGET_RATIO = 1.5  # ours' p99 over bare Celery's, in the same run (issue 18)


def stats(values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {
        "count": len(ms),
        "median_ms": round(statistics.median(ms), 2) if ms else float("nan"),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms), 2) if ms else float("nan"),
    }


def wait_rows(table: str, count: int, timeout: float) -> int:
    from django.db import connection

    deadline = time.monotonic() + timeout
    done = 0
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {table}")
            done = cursor.fetchone()[0]
        if done >= count:
            break
        time.sleep(0.2)
    return done


def run_interleaved(tenant_id: int, count: int, spacing: float, first: int = 0):  # type: ignore[no-untyped-def]
    """Every ``spacing``: one event, then (half a spacing later) one bare task.

    Interleaved rather than one series after the other, so both see the same
    machine: on a shared 2-core box the background load changes from minute to minute.
    Returns the events' commit times by id and the bare tasks' numbers.
    """
    from django.db import transaction

    from bench.bare_tasks import PROBE_EVENT, bare_insert
    from pms.pipeline.publishing import emit_event

    committed: dict[str, float] = {}
    for i in range(first, first + count):
        with transaction.atomic():
            event = emit_event(
                tenant_id=tenant_id,
                aggregate_type="bench",
                aggregate_id=i,
                event_type=PROBE_EVENT,
                payload={"n": i},
            )
        committed[str(event.id)] = time.time()
        time.sleep(spacing / 2)
        enqueued = time.time()
        bare_insert.apply_async(args=[i, enqueued], queue="bookings")
        time.sleep(spacing / 2)
    return committed, range(first, first + count)


def collect(committed: dict[str, float], bare_numbers: range, timeout: float):  # type: ignore[no-untyped-def]
    """Wait for every handler start and bare task of one run; their latencies."""
    from django.db import connection

    wait_rows("bench_handler_start", len(committed), timeout)
    wait_rows("bench_bare", len(bare_numbers), timeout)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT h.event_id::text, extract(epoch FROM h.started_at),
                   extract(epoch FROM h.started_at - e.created_at)
            FROM bench_handler_start h JOIN pms_domainevent e ON e.id = h.event_id
            """
        )
        rows = [row for row in cursor.fetchall() if row[0] in committed]
        cursor.execute(
            "SELECT extract(epoch FROM started_at) - enqueued_at FROM bench_bare "
            "WHERE n >= %s AND n < %s",
            [bare_numbers.start, bare_numbers.stop],
        )
        bare = [float(row[0]) for row in cursor.fetchall()]
        cursor.execute("TRUNCATE bench_handler_start, bench_bare")
    from_commit = [float(start) - committed[event_id] for event_id, start, _ in rows]
    from_created = [float(delta) for _, _, delta in rows]
    return from_commit, from_created, bare


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--spacing-ms", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()

    bench_environment()
    django_setup()
    flush_broker()
    from django.core.management import call_command

    import bench.bare_tasks  # registers the bench handler in this process too
    from tenants.models import Tenant

    call_command("flush", interactive=False, verbosity=0)
    bench.bare_tasks.create_tables()
    tenant = Tenant.objects.create(name="Bench", slug="bench")
    spacing = args.spacing_ms / 1000
    from django.conf import settings

    runs = {}
    with workers(WORKER_GROUPS, include="bench.bare_tasks"):
        time.sleep(2)  # let the workers settle: an idle system
        # 1. The emitting process publishes after commit (OUTBOX_PUBLISH=commit).
        settings.OUTBOX_PUBLISH = "commit"
        committed, bare_numbers = run_interleaved(tenant.pk, args.events, spacing)
        runs["commit"] = collect(committed, bare_numbers, args.timeout)
        # 2. It only NOTIFYs; the outbox publisher process sends (the Procfile's default).
        settings.OUTBOX_PUBLISH = "notify"
        with outbox_publisher(include="bench.bare_tasks"):
            committed, bare_numbers = run_interleaved(
                tenant.pk, args.events, spacing, first=args.events
            )
            runs["notify"] = collect(committed, bare_numbers, args.timeout)

    print(
        f"\nLatency, idle system: {args.events} events {args.spacing_ms:g} ms apart per run, "
        f"workers {WORKER_GROUPS}"
    )
    print(f"{'':50}{'count':>8}{'median ms':>12}{'p99 ms':>10}{'max ms':>10}")
    results: dict[str, dict[str, dict[str, float]]] = {}
    ok = True
    for mode, (from_commit, from_created, bare) in runs.items():
        ours_s, created_s, bare_s = stats(from_commit), stats(from_created), stats(bare)
        results[mode] = {
            "commit_to_start": ours_s,
            "created_at_to_start": created_s,
            "bare": bare_s,
        }
        for label, s in (
            (f"[{mode}] ours: commit (after service) -> start", ours_s),
            (f"[{mode}] ours: event created_at -> start", created_s),
            (f"[{mode}] bare Celery: enqueue -> task start", bare_s),
        ):
            print(
                f"{label:50}{s['count']:>8}{s['median_ms']:>12}{s['p99_ms']:>10}{s['max_ms']:>10}"
            )
        ratio = ours_s["p99_ms"] / bare_s["p99_ms"] if bare_s["p99_ms"] else float("inf")
        met = (
            ours_s["p99_ms"] < TARGET_P99_MS
            and ratio <= TARGET_RATIO
            and ours_s["count"] == args.events
        )
        results[mode]["p99_ratio"] = {"ours_over_bare": round(ratio, 2)}
        ok = ok and met
        print(
            f"[{mode}] p99 commit -> handler start {ours_s['p99_ms']} ms, {ratio:.2f}x bare's   "
            f"target: < {TARGET_P99_MS:g} ms and <= {TARGET_RATIO:g}x   "
            f"{'OK' if met else 'MISSED'}"
        )
    path = write_result(
        "latency",
        {
            "events": args.events,
            "spacing_ms": args.spacing_ms,
            "workers": WORKER_GROUPS,
            "runs": results,
            "target_p99_ms": TARGET_P99_MS,
            "target_ratio": TARGET_RATIO,
            "met": ok,
        },
    )
    print(f"written {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
