"""Worker pools for I/O-bound queues: prefork against threads, measured, not assumed.

Two kinds of I/O-bound work, each sent to a real server on loopback that answers
after ``--latency-ms`` (default 50 ms, a remote SMTP server or a tenant's webhook
receiver on the internet), so the work waits on the network as it does in
production:

- **messaging**: guest emails (``automation.tasks.send_outbound_message``) to an
  aiosmtpd server whose DATA handler waits before it accepts;
- **outbound**: webhook deliveries (``channelsync.tasks.send_webhook``, as the
  ``outbound`` group runs them) to an HTTP receiver that waits before it answers 204.

Each run queues N tasks with no worker running, then starts one worker on that
queue with the pool and concurrency under test (``celery worker -P prefork|threads
-c N``) and drains them. Printed per run: tasks/s (first -> last send, from
PostgreSQL timestamps), the worker's memory (PSS of its processes summed, the peak
sampled while it works) and the database sessions it opened (one per process, or per
thread: Django's connections are per thread).

Run: make bench-pools (or .venv/bin/python -m devstack exec -- .venv/bin/python bench/pools.py)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import bench_environment, django_setup, flush_broker, workers, write_result
from testkit.processes import free_port

RUNS = (("prefork", 4), ("threads", 4), ("threads", 16))


class SlowSmtp:
    """aiosmtpd on loopback; every message is accepted ``latency`` seconds after DATA."""

    def __init__(self, latency: float) -> None:
        from aiosmtpd.controller import Controller

        self.port = free_port()
        self.received = 0
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                await asyncio.sleep(latency)
                sink.received += 1
                return "250 accepted"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SlowSmtp:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


class SlowReceiver:
    """A threaded HTTP server on loopback answering every POST 204 after ``latency`` s."""

    def __init__(self, latency: float) -> None:
        self.received = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                time.sleep(latency)
                receiver.received += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self) -> SlowReceiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()


def queue_emails(tenant: Any, count: int) -> None:
    from automation.models import OutboundMessage
    from automation.services.outbound import SEND_TASK
    from config.celery import app

    messages = OutboundMessage.objects.bulk_create(
        [
            OutboundMessage(
                tenant=tenant,
                idempotency_key=f"bench-pools:{time.monotonic_ns()}:{index}",
                kind="guest_access",
                recipient=f"guest{index}@example.com",
                subject="Your stay",
                body="Welcome.",
                status="pending",
            )
            for index in range(count)
        ]
    )
    for message in messages:
        app.send_task(SEND_TASK, args=[message.pk], queue="messaging")


def queue_webhooks(tenant: Any, url: str, count: int) -> None:
    """Due webhook deliveries, their sends queued straight on ``outbound`` (not through the
    fair dispatcher, whose per-endpoint cap would measure the cap, not the pool)."""
    import uuid

    from django.utils import timezone

    from channelsync.models import WebhookDelivery, WebhookSubscription
    from channelsync.services.webhooks import SEND_WEBHOOK_TASK
    from config.celery import app

    subscription, _ = WebhookSubscription.objects.get_or_create(
        tenant=tenant, url=url, defaults={"event_types": []}
    )
    deliveries = WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(
                tenant=tenant,
                subscription=subscription,
                event_id=uuid.uuid4(),
                event_type="bench.pools",
                payload={"n": index},
                next_attempt_at=timezone.now(),
            )
            for index in range(count)
        ]
    )
    for delivery in deliveries:
        app.send_task(SEND_WEBHOOK_TASK, args=[delivery.pk], queue="outbound")


def drained_rate(table: str, done_at: str) -> tuple[int, float]:
    """Rows done in ``table`` and the seconds from the first to the last; then empties it."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count({done_at}), extract(epoch FROM max({done_at}) - min({done_at})) "
            f"FROM {table}"
        )
        done, seconds = cursor.fetchone()
        cursor.execute(f"DELETE FROM {table}")
    return int(done), float(seconds or 0)


def worker_footprint(name: str) -> tuple[int, int]:
    """The worker's memory (MiB, PSS of its processes) and its database sessions now."""
    import psutil
    from django.db import connection

    # PSS: each process's private pages plus its share of the pages it shares (a
    # prefork child shares most of its parent's), so the sum is what the group costs.
    pss = 0
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if f"bench-{name}@" in cmdline:
            for member in [process, *process.children(recursive=True)]:
                pss += member.memory_full_info().pss
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        (sessions,) = cursor.fetchone()
    return pss // (1024 * 1024), int(sessions)


def drain(kind: str, pool: str, concurrency: int, count: int, timeout: float) -> dict[str, Any]:
    queue = "messaging" if kind == "messaging" else "outbound"
    table, done_at = (
        ("automation_outboundmessage", "sent_at")
        if kind == "messaging"
        else ("channelsync_webhookdelivery", "delivered_at")
    )
    group = f"{kind}-{pool}-{concurrency}"
    peak = (0, 0)
    with workers({group: (queue, concurrency)}, pool=pool):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            peak = max(peak, worker_footprint(group))
            if _finished(kind) >= count:
                break
            time.sleep(0.5)
    done, seconds = drained_rate(table, done_at)
    return {
        "pool": pool,
        "concurrency": concurrency,
        "done": done,
        "seconds": round(seconds, 2),
        "per_s": round((done - 1) / seconds, 1) if seconds else 0.0,
        "pss_mib": peak[0],
        "db_sessions": peak[1],
    }


def _finished(kind: str) -> int:
    from automation.models import OutboundMessage
    from channelsync.models import WebhookDelivery

    if kind == "messaging":
        return OutboundMessage.objects.filter(status="sent").count()
    return WebhookDelivery.objects.filter(delivered_at__isnull=False).count()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=400, help="tasks per run")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    latency = args.latency_ms / 1000

    smtp = SlowSmtp(latency)
    receiver = SlowReceiver(latency)
    env = bench_environment()
    import os

    os.environ["EMAIL_URL"] = f"smtp://127.0.0.1:{smtp.port}"
    os.environ["CHANNEL_FETCH_ALLOW_LOOPBACK"] = env["CHANNEL_FETCH_ALLOW_LOOPBACK"]
    django_setup()
    flush_broker()
    from django.core.management import call_command

    from tenants.models import Tenant

    call_command("flush", interactive=False, verbosity=0)
    tenant = Tenant.objects.create(name="Bench", slug="bench")
    results: dict[str, list[dict[str, Any]]] = {"messaging": [], "outbound": []}
    with smtp, receiver:
        for kind in results:
            for pool, concurrency in RUNS:
                if kind == "messaging":
                    queue_emails(tenant, args.tasks)
                else:
                    queue_webhooks(tenant, receiver.url, args.tasks)
                results[kind].append(drain(kind, pool, concurrency, args.tasks, args.timeout))

    print(
        f"\nWorker pools, I/O-bound work: {args.tasks} tasks per run, the peer answers after "
        f"{args.latency_ms:g} ms"
    )
    print(f"{'':28}{'done':>6}{'seconds':>9}{'per s':>8}{'PSS MiB':>9}{'DB sessions':>13}")
    for kind, runs in results.items():
        for run in runs:
            label = f"{kind}: {run['pool']} -c {run['concurrency']}"
            print(
                f"{label:28}{run['done']:>6}{run['seconds']:>9}{run['per_s']:>8}"
                f"{run['pss_mib']:>9}{run['db_sessions']:>13}"
            )
    path = write_result(
        "pools", {"tasks": args.tasks, "latency_ms": args.latency_ms, "results": results}
    )
    print(f"written {path}")
    complete = all(run["done"] == args.tasks for runs in results.values() for run in runs)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
