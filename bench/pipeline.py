"""Pipeline throughput: bookings through the whole event pipeline vs bare Celery.

N bookings (distinct properties and dates, so none conflict) are made with
``booking_create`` while real workers (grouped as in the Procfile) run the
default handler set; the run ends when every EventDelivery (including those of
events the handlers emit, e.g. payment.requested) is done. Rates are measured
from PostgreSQL timestamps: first event created_at -> last delivery completed_at.

In the same run, with the same workers, a bare Celery baseline: as many plain
tasks as there were deliveries, spread over the same queues in the same
proportions, each doing one PostgreSQL insert (bench.bare_tasks.bare_insert).
Printed: deliveries/s, events/s, bare tasks/s and the ratio ours / bare.
Target (issue 9): ratio >= 0.6.

Run: make bench-pipeline (or .venv/bin/python -m devstack exec -- .venv/bin/python bench/pipeline.py)
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import bench_environment, django_setup, flush_broker, workers, write_result

# As in the Procfile, with its default concurrencies.
WORKER_GROUPS = {
    "operational": ("bookings,messaging,accounting,default", 2),
    "payments": ("payments,fallback", 1),
    "automation": ("automation,messaging_batch,bulk", 1),
    "sync": ("channelsync", 1),
}
TARGET = 0.6


def build(count: int, properties: int):  # type: ignore[no-untyped-def]
    from django.core.management import call_command

    from bench.bare_tasks import create_tables
    from pms.models import Guest, Property
    from tenants.models import Tenant

    call_command("flush", interactive=False, verbosity=0)
    create_tables()
    tenant = Tenant.objects.create(name="Bench", slug="bench")
    props = Property.objects.bulk_create(
        [
            Property(tenant=tenant, name=f"P{i}", slug=f"p{i}", nightly_rate=100, max_guests=4)
            for i in range(properties)
        ]
    )
    guests = Guest.objects.bulk_create(
        [
            Guest(tenant=tenant, name=f"Guest {i}", email=f"guest{i}@example.com")
            for i in range(count)
        ]
    )
    return tenant, props, guests


def run_pipeline(tenant, props, guests, producers: int, timeout: float) -> dict[str, object]:  # type: ignore[no-untyped-def]
    from django.db import connection

    from bookings.services import booking_create
    from pms.models import EventDelivery

    start = date.today() + timedelta(days=30)

    def produce(part: int) -> None:
        # Each producer books its own properties (index % producers), so none waits on another's lock.
        try:
            for i in range(part, len(guests), producers):
                prop = props[i % len(props)]
                slot = i // len(props)
                booking_create(
                    tenant=tenant,
                    property=prop,
                    guest=guests[i],
                    check_in=start + timedelta(days=3 * slot),
                    check_out=start + timedelta(days=3 * slot + 2),
                )
        finally:
            connection.close()

    started = time.monotonic()
    with ThreadPoolExecutor(producers) as pool:
        list(pool.map(produce, range(producers)))
    created_s = time.monotonic() - started
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not EventDelivery.objects.exclude(status="done").exists():
            break
        time.sleep(0.5)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT count(*), count(*) FILTER (WHERE d.status = 'done'),
                   count(DISTINCT d.event_id),
                   extract(epoch FROM max(d.completed_at) - min(e.created_at))
            FROM pms_eventdelivery d JOIN pms_domainevent e ON e.id = d.event_id
            """
        )
        deliveries, done, events, seconds = cursor.fetchone()
        cursor.execute("SELECT queue, count(*) FROM pms_eventdelivery GROUP BY queue ORDER BY 1")
        per_queue = dict(cursor.fetchall())
        cursor.execute(
            "SELECT handler, count(*) FROM pms_eventdelivery GROUP BY handler ORDER BY 1"
        )
        per_handler = dict(cursor.fetchall())
    seconds = float(seconds or 0)
    return {
        "bookings": len(guests),
        "producers": producers,
        "create_seconds": round(created_s, 2),
        "deliveries": deliveries,
        "done": done,
        "events": events,
        "seconds": round(seconds, 2),
        "deliveries_per_s": round(done / seconds, 1) if seconds else 0.0,
        "events_per_s": round(events / seconds, 1) if seconds else 0.0,
        "per_queue": per_queue,
        "per_handler": per_handler,
    }


def run_bare(per_queue: dict[str, int], timeout: float) -> dict[str, object]:
    from django.db import connection

    from bench.bare_tasks import bare_insert

    # Interleave the queues in the deliveries' proportions, as the pipeline's publishes are.
    plan: list[str] = []
    remaining = dict(per_queue)
    while any(remaining.values()):
        for queue in list(remaining):
            if remaining[queue]:
                plan.append(queue)
                remaining[queue] -= 1
    total = len(plan)
    first = time.time()
    for n, queue in enumerate(plan):
        bare_insert.apply_async(args=[n, time.time()], queue=queue)
    deadline = time.monotonic() + timeout
    done = 0
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM bench_bare")
            done = cursor.fetchone()[0]
        if done >= total:
            break
        time.sleep(0.5)
    with connection.cursor() as cursor:
        cursor.execute("SELECT extract(epoch FROM max(started_at)) FROM bench_bare")
        last = float(cursor.fetchone()[0] or first)
    seconds = last - first
    return {
        "tasks": total,
        "done": done,
        "seconds": round(seconds, 2),
        "tasks_per_s": round(done / seconds, 1) if seconds else 0.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bookings", type=int, default=1000)
    parser.add_argument("--properties", type=int, default=200)
    parser.add_argument(
        "--producers", type=int, default=4, help="threads calling booking_create (as web workers)"
    )
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    if args.properties % args.producers:
        parser.error("--properties must be a multiple of --producers")

    bench_environment()
    django_setup()
    flush_broker()
    import bench.bare_tasks  # noqa: F401 - registers the bench handler here too

    tenant, props, guests = build(args.bookings, args.properties)
    with workers(WORKER_GROUPS, include="bench.bare_tasks"):
        ours = run_pipeline(tenant, props, guests, args.producers, args.timeout)
        bare = run_bare(ours["per_queue"], args.timeout)  # type: ignore[arg-type]

    ratio = ours["deliveries_per_s"] / bare["tasks_per_s"] if bare["tasks_per_s"] else 0.0  # type: ignore[operator]
    ok = ratio >= TARGET and ours["done"] == ours["deliveries"]
    print(f"\nPipeline throughput: {args.bookings} bookings, workers {WORKER_GROUPS}")
    print(f"{'':34}{'count':>10}{'seconds':>10}{'per s':>10}")
    print(
        f"{'ours: deliveries done':34}{ours['done']:>10}{ours['seconds']:>10}{ours['deliveries_per_s']:>10}"
    )
    print(f"{'ours: events':34}{ours['events']:>10}{ours['seconds']:>10}{ours['events_per_s']:>10}")
    print(
        f"{'bare Celery: one-insert tasks':34}{bare['done']:>10}{bare['seconds']:>10}{bare['tasks_per_s']:>10}"
    )
    print(f"deliveries per handler: {ours['per_handler']}")
    print(
        f"bookings created in {ours['create_seconds']} s by {args.producers} producer threads "
        "(bench process, workers running)"
    )
    print(
        f"ratio ours / bare (deliveries/s / tasks/s): {ratio:.2f}   target: >= {TARGET}   "
        f"{'OK' if ok else 'MISSED'}"
    )
    path = write_result(
        "pipeline",
        {
            "workers": WORKER_GROUPS,
            "ours": ours,
            "bare": bare,
            "ratio": round(ratio, 2),
            "target": TARGET,
            "met": ok,
        },
    )
    print(f"written {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
