"""Pipeline throughput: deliveries per second against plain Celery, and the cost of the hooks.

N bookings (distinct properties and dates, so none conflict) are made with
``booking_create`` while no worker runs, so every delivery's message waits in its
queue; then real workers (grouped as in the Procfile) start and drain them, with the
follow-ups the handlers cause (the ``payment.requested`` event, the emails' send
tasks). The rate is the drain's: deliveries done over first -> last ``completed_at``
(PostgreSQL timestamps), so making the bookings (the bench process's own speed) is
not in it (it is printed apart).

Two baselines in the same run, on the same queues in the same proportions, with
the same concurrency, each task one INSERT, all queued before their workers start:

- **plain Celery** (bench.plain_celery): a Celery app with nothing of the project
  (no Django, no signals, no task events), same broker declarations, acks late,
  prefetch 1;
- **the same task with the project's hooks** (bench.bare_tasks.bare_insert in the
  project's workers: statistics and monitoring signals, tenant logging, task events,
  failure records, the connection hygiene per task).

Printed: the three rates, pipeline / plain (target >= 0.75) and the hooks' cost,
1 - hooked / plain (target <= 15 %).

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

# The Procfile's groups and pools (automation and sync with one process each here).
WORKER_GROUPS = {
    "operational": ("bookings,accounting,default", 2),
    "messaging": ("messaging", 16, 0, "threads"),
    "payments": ("payments,fallback", 1),
    "automation": ("automation,messaging_batch,bulk", 1),
    "sync": ("channelsync", 1),
}
TARGET = 0.75  # pipeline deliveries/s over plain Celery one-insert tasks/s
HOOKS_TARGET = 0.15  # the project's per-task hooks: at most this share of plain Celery's rate


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


def make_bookings(tenant, props, guests, producers: int) -> float:  # type: ignore[no-untyped-def]
    """Every booking, made while no worker runs: their deliveries wait in the queues."""
    from django.db import connection

    from bookings.services import booking_create

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
    return round(time.monotonic() - started, 2)


def drain_pipeline(timeout: float) -> dict[str, object]:
    """Wait until every delivery is done (workers running); the drain's rate."""
    from django.db import connection

    from automation.models import OutboundMessage
    from pms.models import EventDelivery, FairWorkItem

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not EventDelivery.objects.exclude(status="done").exists():
            break
        time.sleep(0.5)
    # The emails' send tasks and fair work the handlers queued follow the deliveries:
    # let them finish too, or they would run during (and slow) the next run.
    while time.monotonic() < deadline:
        if not (
            OutboundMessage.objects.filter(status__in=["pending", "sending"]).exists()
            or FairWorkItem.objects.filter(finished_at__isnull=True).exists()
        ):
            break
        time.sleep(0.5)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT count(*), count(*) FILTER (WHERE d.status = 'done'),
                   count(DISTINCT d.event_id),
                   extract(epoch FROM max(d.completed_at) - min(d.completed_at))
            FROM pms_eventdelivery d
            """
        )
        deliveries, done, events, seconds = cursor.fetchone()
        cursor.execute("SELECT queue, count(*) FROM pms_eventdelivery GROUP BY queue ORDER BY 1")
        per_queue = dict(cursor.fetchall())
        cursor.execute(
            "SELECT handler, count(*) FROM pms_eventdelivery GROUP BY handler ORDER BY 1"
        )
        per_handler = dict(cursor.fetchall())
        cursor.execute("SELECT count(*) FROM automation_outboundmessage WHERE status = 'sent'")
        (sent,) = cursor.fetchone()
    seconds = float(seconds or 0)
    return {
        "deliveries": deliveries,
        "done": done,
        "events": events,
        "messages_sent": sent,
        "seconds": round(seconds, 2),
        "per_s": round((done - 1) / seconds, 1) if seconds else 0.0,
        "events_per_s": round(events / seconds, 1) if seconds else 0.0,
        "per_queue": per_queue,
        "per_handler": per_handler,
    }


def queue_plan(per_queue: dict[str, int]) -> list[str]:
    """The queues interleaved in the deliveries' proportions, as the pipeline's publishes are."""
    plan: list[str] = []
    remaining = dict(per_queue)
    while any(remaining.values()):
        for queue in list(remaining):
            if remaining[queue]:
                plan.append(queue)
                remaining[queue] -= 1
    return plan


def drain_table(total: int, timeout: float) -> dict[str, object]:
    """Wait for ``total`` rows in bench_bare (workers running); the drain's rate."""
    from django.db import connection

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
        cursor.execute(
            "SELECT count(*), extract(epoch FROM max(started_at) - min(started_at)) FROM bench_bare"
        )
        done, seconds = cursor.fetchone()
        cursor.execute("TRUNCATE bench_bare")
    seconds = float(seconds or 0)
    return {
        "tasks": total,
        "done": done,
        "seconds": round(seconds, 2),
        "per_s": round((done - 1) / seconds, 1) if seconds else 0.0,
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
    from bench.bare_tasks import bare_insert
    from bench.plain_celery import plain_insert

    tenant, props, guests = build(args.bookings, args.properties)
    create_seconds = make_bookings(tenant, props, guests, args.producers)
    with workers(WORKER_GROUPS, include="bench.bare_tasks"):
        ours = drain_pipeline(args.timeout)
    plan = queue_plan(ours["per_queue"])  # type: ignore[arg-type]
    for n, queue in enumerate(plan):
        bare_insert.apply_async(args=[n, time.time()], queue=queue)
    with workers(WORKER_GROUPS, include="bench.bare_tasks"):
        hooked = drain_table(len(plan), args.timeout)
    for n, queue in enumerate(plan):
        plain_insert.apply_async(args=[n, time.time()], queue=queue)
    with workers(WORKER_GROUPS, app="bench.plain_celery"):
        plain = drain_table(len(plan), args.timeout)

    def rate(run: dict[str, object]) -> float:
        return float(run["per_s"])  # type: ignore[arg-type]

    ratio = rate(ours) / rate(plain) if rate(plain) else 0.0
    hooks_cost = 1 - rate(hooked) / rate(plain) if rate(plain) else 1.0
    complete = ours["done"] == ours["deliveries"] and plain["done"] == hooked["done"] == len(plan)
    ok = ratio >= TARGET and hooks_cost <= HOOKS_TARGET and complete
    print(f"\nPipeline throughput: {args.bookings} bookings, workers {WORKER_GROUPS}")
    print("each run drains queues filled before its workers start; rate = first -> last task")
    print(f"{'':44}{'count':>8}{'seconds':>10}{'per s':>10}")
    rows = (
        ("ours: deliveries done", ours["done"], ours),
        ("plain Celery: one-INSERT tasks", plain["done"], plain),
        ("the same with the project's hooks", hooked["done"], hooked),
    )
    for label, count, run in rows:
        print(f"{label:44}{count:>8}{run['seconds']:>10}{run['per_s']:>10}")
    print(
        f"(ours also ran {ours['events']} events and sent {ours['messages_sent']} emails "
        "through their own send tasks)"
    )
    print(f"deliveries per handler: {ours['per_handler']}")
    print(f"bookings made in {create_seconds} s by {args.producers} producer threads (no workers)")
    print(
        f"ratio pipeline / plain Celery: {ratio:.2f}   target: >= {TARGET}   "
        f"{'OK' if ratio >= TARGET else 'MISSED'}"
    )
    print(
        f"the project's per-task hooks cost {hooks_cost:.0%} of plain Celery's rate   "
        f"target: <= {HOOKS_TARGET:.0%}   {'OK' if hooks_cost <= HOOKS_TARGET else 'MISSED'}"
    )
    path = write_result(
        "pipeline",
        {
            "workers": WORKER_GROUPS,
            "bookings_create_seconds": create_seconds,
            "ours": ours,
            "plain": plain,
            "hooked": hooked,
            "ratio": round(ratio, 2),
            "hooks_cost": round(hooks_cost, 3),
            "target": TARGET,
            "hooks_target": HOOKS_TARGET,
            "met": ok,
        },
    )
    print(f"written {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
