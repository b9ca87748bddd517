"""Fault injection at scale: lost / duplicated / failed counts under real faults.

Runs (each with its own database, its own private broker Redis and "state" Redis
(REDIS_URL: cache, poison counters), and real ``celery worker`` processes):

  chaos             kill -9 a random worker child process every few seconds
  redis-restart     the broker Redis SIGKILLed and restarted empty mid-run
  broker-down       the broker unreachable for --outage-seconds mid-run; bookings go on
  postgres-restart  a private PostgreSQL (temp dir, own port) restarted with
                    ``pg_ctl restart -m fast`` mid-run
  poison            1% poison events (their handler SIGKILLs its process every time)
  broker-node       a three-node RabbitMQ cluster of the run's own; the node leading the
                    bookings queue is killed with kill -9 mid-run and started again
                    after --node-down-seconds; clients were given every node
  redis-failover    Redis (cache, counters, locks and the broker) through Sentinel: the
                    primary is killed with kill -9 mid-run and a replica promoted
  all               every run above, one subprocess each, then a summary table

Bookings are made through bookings.services.booking_create (distinct properties
and dates). bench/fault_handlers.py adds a ``booking.created`` handler writing a
plain effect table without a unique key, and the poison handler; workers load it
with ``--include``. The outbox relay runs in this process: a thread calling
pms.pipeline.publishing.relay_due_deliveries() every OUTBOX_RELAY_INTERVAL seconds (what the
beat task does), beside ``manage.py outbox_publisher`` (the Procfile's publisher, which
publishes each commit's deliveries under the default OUTBOX_PUBLISH=notify). After the
fault the run waits for reconcile_until_settled and
prints events, deliveries, applied, failed_for_review, lost, and where every email,
SMS, webhook and push landed (bench/landing.py: received once, twice, never, parked as
"outcome unknown"). Exit status 1 if anything is lost, received twice or never
received (or, for poison, if a poison event is not in FailedTask as PoisonMessageError).

Databases: ``<db>_faults_<run>`` on the DATABASE_URL server (dropped and created
at the start of the run, kept afterwards for inspection); postgres-restart uses
its private server and deletes it at the end. Nothing shared is ever killed.

RabbitMQ: with ``FAULTS_BROKER=amqp://user:pass@host:5672/<vhost>`` every run uses
that RabbitMQ (quorum queues, publisher confirms, as configured by config.queues)
instead of a private broker Redis; use a vhost of its own, since each run purges its
queues first. The server is shared, so it is never stopped: broker-down cuts the
path to it (a loopback TCP proxy in this process, killed for --outage-seconds:
connections reset, then refused), and redis-restart cuts it, purges every queue
(Celery's delay queues too) and restores it: a broker that came back empty.
Results go to bench/results/faults-rabbitmq.json.

Run: make faults (all) or make faults-<run>; or
.venv/bin/python -m devstack exec -- .venv/bin/python bench/faults.py chaos --bookings 500
"""

from __future__ import annotations

import argparse
import fcntl
import io
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import contextlib

from bench.fault_servers import (
    LOGS,
    Beat,
    ClusterBroker,
    PrivatePostgres,
    PrivateRedis,
    Publisher,
    RabbitBroker,
    SentinelRedis,
    Workers,
)
from bench.harness import RESULTS, machine
from bench.landing import (
    GUEST_EMAIL,
    GUEST_PHONE,
    Sinks,
    landing_report,
    landing_totals,
    landing_world,
    print_landing,
)
from config.queues import broker_is_amqp

RUNS = (
    "chaos",
    "redis-restart",
    "broker-down",
    "postgres-restart",
    "poison",
    "broker-node",
    "redis-failover",
)
# Sized for ~20 minutes in all on a 2-core machine shared with other work (see RESULTS.md).
DEFAULT_BOOKINGS = {
    "chaos": 1200,
    "redis-restart": 600,
    "broker-down": 600,
    "postgres-restart": 600,
    "poison": 800,
    "broker-node": 600,
    "redis-failover": 600,
}
# Bookings per second (0: as fast as the service goes). broker-down is paced so the
# outage falls in the middle of the bookings, which keep coming while the broker is away.
DEFAULT_RATE = {"broker-down": 4.0, "broker-node": 4.0, "redis-failover": 4.0}
RECOVERY_TARGET_SECONDS = 30  # broker-node, redis-failover: deliveries flow again within
FAULT_AT = 0.4  # the fault strikes when this share of the bookings is made
PROPERTIES = 100
# The Procfile's groups and pools, smaller where it runs 4 processes (2 cores here).
WORKER_GROUPS = {
    "operational": ("bookings,accounting,default", 2, "prefork"),
    "messaging": ("messaging", 16, "threads"),
    "payments": ("payments,fallback", 1, "prefork"),
    "background": ("automation,messaging_batch,bulk", 1, "prefork"),
    "sync": ("channelsync", 1, "prefork"),
    "outbound": ("outbound", 16, "threads"),
}
# A RabbitMQ the runs use instead of a private broker Redis (see the docstring).
RABBITMQ_URL = os.environ.get("FAULTS_BROKER", "")
if RABBITMQ_URL and not broker_is_amqp(RABBITMQ_URL):
    sys.exit(f"FAULTS_BROKER must be an amqp:// URL, not {RABBITMQ_URL!r}")
BROKER_KIND = "rabbitmq" if RABBITMQ_URL else "redis"


def broker_kind(run: str) -> str:
    if run == "broker-node":
        return "rabbitmq cluster (3 nodes)"
    if run == "redis-failover":
        return f"{BROKER_KIND}, Redis through Sentinel" if RABBITMQ_URL else "redis via sentinel"
    return BROKER_KIND


# Runs that cut the path to a shared RabbitMQ go through a proxy they can kill.
PROXIED_RUNS = ("redis-restart", "broker-down")
SUMMARY = RESULTS / ("faults-rabbitmq.json" if RABBITMQ_URL else "faults.json")


# --- Set-up --------------------------------------------------------------------------


def _database_for(run: str) -> str:
    """Drop and create ``<db>_faults_<run>`` on the DATABASE_URL server; return its URL."""
    import psycopg

    admin_url = os.environ["DATABASE_URL"]
    parts = urlsplit(admin_url)
    name = f"{parts.path.lstrip('/') or 'pms'}_faults_{run.replace('-', '_')}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}"))


def _django(env: dict[str, str]) -> None:
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    call_command("setup_periodic_tasks", verbosity=0, stdout=io.StringIO())  # beat's jobs
    from django.db import connection

    from bench import fault_handlers  # registers the bench handlers in this process too

    with connection.cursor() as cursor:
        cursor.execute(fault_handlers.EFFECT_TABLE_SQL)


def _world(count: int):  # type: ignore[no-untyped-def]
    from pms.models import Guest, Property
    from tenants.models import Tenant

    tenant = Tenant.objects.create(name="Fault bench", slug="fault-bench")
    properties = [
        Property.objects.create(
            tenant=tenant, name=f"Bench {i}", slug=f"bench-{i}", nightly_rate=100, max_guests=4
        )
        for i in range(min(PROPERTIES, count))
    ]
    guest = Guest.objects.create(
        tenant=tenant, name="Bench guest", email=GUEST_EMAIL, phone=GUEST_PHONE
    )
    return tenant, properties, guest


# --- The run -------------------------------------------------------------------------


@dataclass
class Context:
    run: str
    args: argparse.Namespace
    total: int
    broker: PrivateRedis | RabbitBroker | ClusterBroker | SentinelRedis
    workers: Workers
    postgres: PrivatePostgres | None = None
    state: PrivateRedis | SentinelRedis | None = None  # REDIS_URL's server(s)
    made: int = 0
    producing: threading.Event = field(default_factory=threading.Event)
    fault_time: threading.Event = field(default_factory=threading.Event)
    fault_done: threading.Event = field(default_factory=threading.Event)
    # Servers a fault restarts are children of the fault thread, and PR_SET_PDEATHSIG
    # fires when the thread that forked them ends: the thread waits for this instead.
    finished: threading.Event = field(default_factory=threading.Event)
    info: dict[str, Any] = field(default_factory=dict)
    # (monotonic start, seconds, error) of every booking_create call
    calls: list[tuple[float, float, str]] = field(default_factory=list)


def supervise_loop(stop: threading.Event, workers: Workers) -> None:
    """Start again a worker that exited, as supervisord does under ``make run``."""
    while not stop.wait(2):
        for group in workers.restart_dead():
            print(f"    worker {group} had exited: started again", flush=True)


def relay_loop(stop: threading.Event, stats: dict[str, int]) -> None:
    from django.conf import settings
    from django.db import connection

    from pms.pipeline.relay import relay_due_deliveries

    while not stop.wait(settings.OUTBOX_RELAY_INTERVAL):
        try:
            stats["relayed"] += relay_due_deliveries()
        except Exception:
            stats["relay_errors"] += 1
            connection.close()  # PostgreSQL restarted: reconnect on the next pass
    connection.close()


def produce(ctx: Context, tenant, properties, guest) -> None:  # type: ignore[no-untyped-def]
    from django.db import InterfaceError, OperationalError, connection
    from kombu.exceptions import OperationalError as KombuOperationalError
    from redis import RedisError

    from bench.fault_handlers import emit_poison
    from bookings.errors import BookingError
    from bookings.models import Booking
    from bookings.services import booking_create

    start = date.today() + timedelta(days=30)
    rate = ctx.args.rate
    poison_every = round(1 / ctx.args.poison_rate) if ctx.run == "poison" else 0
    poison_sent = 0
    began = time.monotonic()
    for i in range(ctx.total):
        if rate:
            time.sleep(max(0.0, began + i / rate - time.monotonic()))
        if i >= ctx.total * FAULT_AT:
            ctx.fault_time.set()
        prop = properties[i % len(properties)]
        check_in = start + timedelta(days=2 * (i // len(properties)))
        called = time.monotonic()
        error = ""
        for attempt in range(240):
            try:
                booking_create(
                    tenant=tenant,
                    property=prop,
                    guest=guest,
                    check_in=check_in,
                    check_out=check_in + timedelta(days=1),
                    actor="bench:faults",
                )
                break
            except (OperationalError, InterfaceError) as exc:
                # The database went away (postgres-restart): reconnect and try again.
                error = type(exc).__name__
                connection.close()
                time.sleep(0.5)
            except (RedisError, KombuOperationalError) as exc:
                # Redis or the broker failing over: the call failed, the caller retries.
                error = type(exc).__name__
                time.sleep(0.5)
            except BookingError as exc:
                # A retried call whose first attempt had committed after all.
                committed = Booking.objects.filter(property=prop, check_in=check_in).exists()
                if exc.code == "unavailable" and attempt > 0 and committed:
                    break
                raise
        ctx.calls.append((called, time.monotonic() - called, error))
        ctx.made = i + 1
        if poison_every and i % poison_every == poison_every // 2:
            emit_poison(tenant_id=tenant.pk)
            poison_sent += 1
    ctx.info["produce_seconds"] = round(time.monotonic() - began, 1)
    if poison_every:
        ctx.info["poison_events"] = poison_sent
    ctx.producing.clear()


def fault_chaos(ctx: Context) -> None:
    kills = 0
    deadline = time.monotonic() + 3600
    while (ctx.producing.is_set() or kills < ctx.args.min_kills) and time.monotonic() < deadline:
        time.sleep(random.uniform(0.5, 1.5) * ctx.args.kill_interval)
        pids = ctx.workers.child_pids()
        if not pids:
            continue
        try:
            os.kill(random.choice(pids), signal.SIGKILL)
            kills += 1
        except ProcessLookupError:
            continue
    ctx.info["kills"] = kills


def fault_redis_restart(ctx: Context) -> None:
    ctx.fault_time.wait()
    ctx.info["fault_at_booking"] = ctx.made
    ctx.broker.kill()
    time.sleep(1)
    if isinstance(ctx.broker, RabbitBroker):  # a killed private Redis is empty already
        ctx.info["messages_dropped"] = ctx.broker.wipe()
    ctx.broker.start()  # same port, empty: every queued and unacked message is gone
    ctx.info["broker_restarted"] = True


def fault_broker_down(ctx: Context) -> None:
    ctx.fault_time.wait()
    ctx.info["fault_at_booking"] = ctx.made
    down = time.monotonic()
    ctx.broker.kill()
    time.sleep(ctx.args.outage_seconds)
    up = time.monotonic()
    ctx.broker.start()
    during = [c for c in ctx.calls if down <= c[0] < up]
    ctx.info["outage_seconds"] = round(up - down, 1)
    ctx.info["bookings_during_outage"] = len(during)
    ctx.info["failed_calls_during_outage"] = sum(1 for c in during if c[2])
    if during:
        from bench.harness import percentile

        ctx.info["create_p95_ms_during_outage"] = round(
            percentile([c[1] for c in during], 95) * 1000
        )
        ctx.info["create_max_ms_during_outage"] = round(max(c[1] for c in during) * 1000)


def fault_postgres_restart(ctx: Context) -> None:
    assert ctx.postgres is not None
    ctx.fault_time.wait()
    ctx.info["fault_at_booking"] = ctx.made
    began = time.monotonic()
    ctx.postgres.restart()
    ctx.info["restart_seconds"] = round(time.monotonic() - began, 1)


def _seconds_until_flowing(since_wall: Any, since: float, timeout: float = 120) -> float | None:
    """Until a delivery of an event committed after ``since`` is done: deliveries flow again."""
    from django.db import connection

    from pms.models import EventDelivery

    try:
        while time.monotonic() - since < timeout:
            fresh = EventDelivery.objects.filter(created_at__gt=since_wall, status="done")
            if fresh.exists():
                return round(time.monotonic() - since, 1)
            time.sleep(0.2)
        return None
    finally:
        connection.close()


def _calls_between(ctx: Context, began: float, ended: float, label: str) -> None:
    """The booking calls made between ``began`` and ``ended``, and how many failed."""
    during = [c for c in ctx.calls if began <= c[0] < ended]
    ctx.info[f"bookings_during_{label}"] = len(during)
    ctx.info[f"failed_calls_during_{label}"] = sum(1 for c in during if c[2])
    ctx.info[f"error_rate_during_{label}"] = (
        round(100 * ctx.info[f"failed_calls_during_{label}"] / len(during), 1) if during else 0.0
    )


def fault_broker_node(ctx: Context) -> None:
    from django.utils import timezone

    ctx.fault_time.wait()
    ctx.info["fault_at_booking"] = ctx.made
    since_wall, down = timezone.now(), time.monotonic()
    ctx.info["killed_node"] = ctx.broker.kill()
    ctx.info["recovered_seconds"] = _seconds_until_flowing(since_wall, down)
    time.sleep(max(0.0, ctx.args.node_down_seconds - (time.monotonic() - down)))
    up = time.monotonic()
    ctx.broker.start()  # the node rejoins; its replicas catch up from the leaders
    ctx.info["node_down_seconds"] = round(up - down, 1)
    _calls_between(ctx, down, up, "node_loss")


def fault_redis_failover(ctx: Context) -> None:
    from django.utils import timezone

    ctx.fault_time.wait()
    ctx.info["fault_at_booking"] = ctx.made
    since_wall, down = timezone.now(), time.monotonic()
    # REDIS_URL's Sentinel group: also the broker, unless FAULTS_BROKER names a RabbitMQ.
    group = ctx.state
    assert isinstance(group, SentinelRedis)
    ctx.info["promoted_seconds"] = round(group.kill(), 1)
    ctx.info["recovered_seconds"] = _seconds_until_flowing(since_wall, down)
    recovered = time.monotonic()
    group.start()  # the old primary back, as a replica
    _calls_between(ctx, down, max(recovered, down + 1), "failover")


def run_fault(fault, ctx: Context) -> None:  # type: ignore[no-untyped-def]
    try:
        fault(ctx)
    finally:
        ctx.fault_done.set()
        ctx.finished.wait()


FAULTS = {
    "chaos": fault_chaos,
    "redis-restart": fault_redis_restart,
    "broker-down": fault_broker_down,
    "postgres-restart": fault_postgres_restart,
    "poison": None,
    "broker-node": fault_broker_node,
    "redis-failover": fault_redis_failover,
}


def _outbound_settled(*, timeout: float) -> int:
    """Until every due email, SMS, webhook and push is sent or failed (beat's sweeps re-send
    what a killed worker left). Returns how many were still in flight at the deadline."""
    from django.db import connection
    from django.db.models import Q
    from django.utils import timezone

    from automation.choices import OutboundStatus
    from automation.models import OutboundMessage
    from channelsync.models import ChannelUpdate, WebhookDelivery

    deadline = time.monotonic() + timeout
    while True:
        messages = OutboundMessage.objects.filter(
            Q(status=OutboundStatus.PENDING)
            | Q(status=OutboundStatus.SCHEDULED, send_after__lte=timezone.now())
        ).count()
        left = (
            messages
            + WebhookDelivery.objects.filter(status="pending").count()
            + ChannelUpdate.objects.filter(status="pending").count()
        )
        if not left or time.monotonic() > deadline:
            connection.close()
            return left
        time.sleep(1)


def duplicates_and_gaps() -> dict[str, int]:
    from django.db import connection

    from bookings.models import CalendarEntry
    from pms.models import EventDelivery

    calendar, delivery = CalendarEntry._meta.db_table, EventDelivery._meta.db_table
    queries = {
        "dup_effect": "SELECT count(*) FROM (SELECT event_id, handler FROM bench_effect "
        "GROUP BY event_id, handler HAVING count(*) > 1) d",
        "effects_missing": f"SELECT count(*) FROM {delivery} d WHERE d.handler = "
        "'bench.booking_effect' AND d.status = 'done' AND NOT EXISTS "
        "(SELECT 1 FROM bench_effect e WHERE e.event_id = d.event_id)",
        "bookings_without_calendar": f"SELECT count(*) FROM bookings_booking b WHERE NOT EXISTS "
        f"(SELECT 1 FROM {calendar} c WHERE c.booking_id = b.id)",
        "relay_resends": f"SELECT coalesce(sum(publish_count), 0) FROM {delivery}",
    }
    out = {}
    with connection.cursor() as cursor:
        for key, sql in queries.items():
            cursor.execute(sql)
            out[key] = int(cursor.fetchone()[0])
    return out


def poison_check() -> dict[str, int]:
    from bench.fault_handlers import POISON_EVENT
    from pms.models import DomainEvent, EventDelivery, FailedTask

    events = EventDelivery.objects.filter(handler="bench.poison")
    parked = (
        FailedTask.objects.filter(
            delivery__handler="bench.poison", exception_class__endswith="PoisonMessageError"
        )
        .values("delivery")
        .distinct()
        .count()
    )
    return {
        "poison_deliveries": events.count(),
        "poison_in_failed_task": parked,
        "poison_applied": events.filter(status="done").count(),
        "poison_events_emitted": DomainEvent.objects.filter(event_type=POISON_EVENT).count(),
    }


def run_one(run: str, args: argparse.Namespace) -> dict[str, Any]:
    args.bookings = args.bookings or DEFAULT_BOOKINGS[run]
    args.rate = DEFAULT_RATE.get(run, 0.0) if args.rate is None else args.rate
    state: PrivateRedis | SentinelRedis = (
        SentinelRedis() if run == "redis-failover" else PrivateRedis(f"state-{run}")
    )
    broker: PrivateRedis | RabbitBroker | ClusterBroker | SentinelRedis
    if run == "broker-node":
        broker = ClusterBroker()
    elif run == "redis-failover" and not RABBITMQ_URL:
        assert isinstance(state, SentinelRedis)
        broker = state  # one Sentinel group: the queues in database 1, the rest in 0
    elif RABBITMQ_URL:
        broker = RabbitBroker(RABBITMQ_URL, proxied=run in PROXIED_RUNS)
    else:
        broker = PrivateRedis(f"broker-{run}")
    postgres = None
    workers = Workers(run, WORKER_GROUPS)
    publisher = Publisher(run)
    beat = Beat(run)
    sinks = Sinks()
    relay_stop = threading.Event()
    relay_stats = {"relayed": 0, "relay_errors": 0}
    relay = threading.Thread(target=relay_loop, args=(relay_stop, relay_stats), daemon=True)
    supervise_stop = threading.Event()
    supervisor = threading.Thread(
        target=supervise_loop, args=(supervise_stop, workers), daemon=True
    )
    ctx: Context | None = None
    try:
        sinks.start()
        state.start()
        if broker is not state:
            broker.start()
        if isinstance(broker, RabbitBroker):
            broker.wipe()  # what an earlier run left in the vhost
        if run == "postgres-restart":
            postgres = PrivatePostgres("pms_faults")
            postgres.start()
            database_url = postgres.url
        else:
            database_url = _database_for(run)
        _django(
            {
                "DATABASE_URL": database_url,
                "REDIS_URL": state.url(0) if isinstance(state, SentinelRedis) else state.url,
                "CELERY_BROKER_URL": broker.url(1)
                if isinstance(broker, SentinelRedis)
                else broker.url,
                "DJANGO_DEBUG": "false",
                "DJANGO_SECRET_KEY": "bench-faults-only-not-a-secret-0123456789abcdef",
                "CHANNEL_FETCH_ALLOW_LOOPBACK": "true",
                "LOG_LEVEL": "WARNING",
                # A send task lost with the broker is re-sent after these deadlines (900 s
                # and 300 s by default); shorter here so a run settles in minutes.
                "AUTOMATION_MESSAGE_RESEND_AFTER": "120",
                "FAIR_INFLIGHT_DEADLINE": "120",
                **sinks.env(),
            }
        )
        from django.conf import settings

        from config.celery import app
        from pms.pipeline.reconcile import reconcile_until_settled

        app.conf.broker_url = settings.CELERY_BROKER_URL  # a Sentinel URL in kombu's form
        tenant, properties, guest = _world(args.bookings)
        landing_world(tenant, properties, sinks)
        print(
            f"[{run}] broker {broker_kind(run)}; workers starting ({', '.join(WORKER_GROUPS)})",
            flush=True,
        )
        workers.start(app)
        if settings.OUTBOX_PUBLISH == "notify":
            publisher.start()
        beat.start()
        supervisor.start()
        ctx = Context(run, args, args.bookings, broker, workers, postgres, state)
        ctx.producing.set()
        fault = FAULTS[run]
        fault_thread = (
            threading.Thread(target=run_fault, args=(fault, ctx), daemon=True) if fault else None
        )
        print(f"[{run}] {args.bookings} bookings, fault at {FAULT_AT:.0%}", flush=True)
        began = time.monotonic()
        relay.start()
        if fault_thread:
            fault_thread.start()
        produce(ctx, tenant, properties, guest)
        if fault_thread:
            ctx.fault_done.wait()
        relay_stop.set()
        relay.join(60)
        report = reconcile_until_settled(timeout=args.settle_timeout)
        outbound_left = _outbound_settled(timeout=args.settle_timeout)
        wall = time.monotonic() - began
        landing = landing_report(sinks)
        result: dict[str, Any] = {
            "run": run,
            "broker": broker_kind(run),
            "bookings": args.bookings,
            "rate": args.rate,
            **{k: v for k, v in report.as_dict().items() if k != "ok"},
            **duplicates_and_gaps(),
            **landing,
            "outbound_in_flight": outbound_left,
            "worker_restarts": dict(workers.restarts),
            **relay_stats,
            **ctx.info,
            "service_call_errors": sum(1 for c in ctx.calls if c[2]),
            "wall_seconds": round(wall, 1),
        }
        if run == "poison":
            result.update(poison_check())
    finally:
        relay_stop.set()
        supervise_stop.set()
        if ctx is not None:
            ctx.finished.set()
        stops = [beat.stop, publisher.stop, workers.stop, sinks.stop]
        stops += [broker.stop] if broker is not state else []
        stops += [state.stop]
        for stop in stops:  # each one even when another failed (a partial start)
            try:
                stop()
            except Exception as exc:
                print(f"    could not stop {stop.__qualname__}: {exc}", file=sys.stderr)
        if postgres is not None:
            from django.db import connections

            connections.close_all()
            postgres.stop()
    twice, never, parked = landing_totals(result)
    # Duplicates where they can happen: received twice by a receiver, and a bench handler's
    # effect applied twice (its table has no unique key).
    result["duplicated"] = twice + result["dup_effect"]
    result["received_twice"], result["never_received"], result["outcome_unknown"] = (
        twice,
        never,
        parked,
    )
    failures = []
    if result["lost"]:
        failures.append(f"{result['lost']} lost")
    if twice:
        failures.append(f"{twice} received twice")
    if never:
        failures.append(f"{never} never received")
    if result["dup_effect"]:
        failures.append(f"{result['dup_effect']} bench effects applied twice")
    if result["outbound_in_flight"]:
        failures.append(f"{result['outbound_in_flight']} messages, webhooks or pushes unsent")
    if result["effects_missing"]:
        failures.append(f"{result['effects_missing']} applied without effect")
    if result["in_flight"]:
        failures.append(f"{result['in_flight']} still in flight after {args.settle_timeout}s")
    if run == "poison" and result["poison_in_failed_task"] != result["poison_deliveries"]:
        failures.append("poison messages not all in FailedTask as PoisonMessageError")
    if run in ("broker-node", "redis-failover"):
        recovered = result.get("recovered_seconds")
        if recovered is None or recovered > RECOVERY_TARGET_SECONDS:
            failures.append(
                f"deliveries flowed again after {recovered} s (target {RECOVERY_TARGET_SECONDS} s)"
            )
    if run == "broker-down" and result.get("failed_calls_during_outage"):
        failures.append("booking calls failed during the broker outage")
    result["ok"] = not failures
    result["failures"] = failures
    return result


# --- Output --------------------------------------------------------------------------

COLUMNS = (
    ("run", "run", 17),
    ("bookings", "bookings", 9),
    ("events", "events", 8),
    ("deliveries", "deliveries", 11),
    ("applied", "applied", 9),
    ("failed_for_review", "failed", 7),
    ("lost", "lost", 5),
    ("duplicated", "dup", 5),
    ("never_received", "never", 6),
    ("outcome_unknown", "parked", 7),
    ("relay_resends", "relayed", 8),
    ("wall_seconds", "wall s", 8),
)


def _fault_note(r: dict[str, Any]) -> str:
    if r["run"] == "chaos":
        return f"{r.get('kills', 0)} kills"
    if r["run"] == "broker-down":
        return (
            f"{r.get('outage_seconds')} s down, {r.get('bookings_during_outage')} bookings "
            f"during it (p95 {r.get('create_p95_ms_during_outage')} ms, "
            f"{r.get('failed_calls_during_outage')} failed)"
        )
    if r["run"] == "postgres-restart":
        return f"restart {r.get('restart_seconds')} s, {r.get('service_call_errors')} calls retried"
    if r["run"] == "poison":
        return f"{r.get('poison_in_failed_task')}/{r.get('poison_deliveries')} poison in FailedTask"
    if r["run"] == "broker-node":
        return (
            f"{r.get('killed_node')} down {r.get('node_down_seconds')} s, flowing again after "
            f"{r.get('recovered_seconds')} s, {r.get('bookings_during_node_loss')} bookings "
            f"during it ({r.get('error_rate_during_node_loss')} % failed)"
        )
    if r["run"] == "redis-failover":
        return (
            f"replica promoted after {r.get('promoted_seconds')} s, flowing again after "
            f"{r.get('recovered_seconds')} s, {r.get('bookings_during_failover')} bookings "
            f"during it ({r.get('error_rate_during_failover')} % failed)"
        )
    if r["run"] == "redis-restart":
        return f"restarted empty at booking {r.get('fault_at_booking')}"
    return ""


def print_table(results: list[dict[str, Any]]) -> None:
    print(
        "".join(
            f"{title:>{w}}" if i else f"{title:<{w}}" for i, (_, title, w) in enumerate(COLUMNS)
        )
        + "  result  fault"
    )
    for r in results:
        cells = "".join(
            f"{r.get(key, ''):>{w}}" if i else f"{r.get(key, ''):<{w}}"
            for i, (key, _, w) in enumerate(COLUMNS)
        )
        print(f"{cells}  {'OK' if r['ok'] else 'FAIL':<6}  {_fault_note(r)}")
        for failure in r.get("failures", []):
            print(f"    {failure}")


def save(result: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {"runs": {}}
    if SUMMARY.exists():
        with contextlib.suppress(ValueError):
            data = json.loads(SUMMARY.read_text())
    data.setdefault("runs", {})[result["run"]] = {
        **result,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "epoch": time.time(),
    }
    data["machine"] = machine()
    SUMMARY.write_text(json.dumps(data, indent=2, default=str))


def run_all(args: argparse.Namespace, passthrough: list[str]) -> int:
    began, started = time.monotonic(), time.time()
    codes = {}
    for run in RUNS:
        print(f"\n=== {run} ===", flush=True)
        codes[run] = subprocess.call([sys.executable, __file__, run, *passthrough])
    data = json.loads(SUMMARY.read_text()) if SUMMARY.exists() else {"runs": {}}
    results = [data["runs"][r] for r in RUNS if data["runs"].get(r, {}).get("epoch", 0) >= started]
    print(f"\nFault injection, {time.monotonic() - began:.0f} s in all")
    print_table(results)
    for result in results:
        print(f"\n{result['run']}:")
        print_landing(result)
    print(f"written {SUMMARY}")
    return 0 if all(code == 0 for code in codes.values()) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", choices=[*RUNS, "all"])
    parser.add_argument("--bookings", type=int, help="bookings to make (default per run)")
    parser.add_argument("--rate", type=float, help="bookings per second (0: unpaced)")
    parser.add_argument("--kill-interval", type=float, default=4.0, help="chaos: mean seconds")
    parser.add_argument("--min-kills", type=int, default=20, help="chaos: at least this many")
    parser.add_argument("--outage-seconds", type=float, default=60.0, help="broker-down")
    parser.add_argument("--node-down-seconds", type=float, default=30.0, help="broker-node")
    parser.add_argument("--poison-rate", type=float, default=0.01, help="poison: share")
    parser.add_argument("--settle-timeout", type=float, default=300.0)
    args = parser.parse_args()
    if RABBITMQ_URL:
        _require_rabbitmq(RABBITMQ_URL)
    if args.run == "all":
        return run_all(args, sys.argv[2:])
    LOGS.mkdir(parents=True, exist_ok=True)
    lock = (LOGS / f"{args.run}.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # its database is dropped at start
    except BlockingIOError:
        print(f"another {args.run} run is in progress", file=sys.stderr)
        return 2
    result = run_one(args.run, args)
    save(result)
    print()
    print_table([result])
    print()
    print_landing(result)
    return 0 if result["ok"] else 1


def _require_rabbitmq(url: str) -> None:
    """One readable line, not a traceback, when FAULTS_BROKER cannot be used."""
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as exc:
        parts = urlsplit(url)  # no credentials in the message
        where = f"{parts.hostname}:{parts.port or 5672}{parts.path or '/'}"
        sys.exit(f"FAULTS_BROKER: cannot connect to RabbitMQ at {where}: {exc}")


if __name__ == "__main__":
    sys.exit(main())
