"""Shared pieces of the benchmarks: a bench database, real workers, a loopback peer.

Benchmarks run on the same servers as the dev stack (embedded PostgreSQL and
Redis, or DATABASE_URL / REDIS_URL) but in their own database (``<name>_bench``)
and their own Redis database index, so they never touch demo data.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def bench_environment() -> dict[str, str]:
    """Point this process (and the workers it starts) at the bench database and Redis db 14."""
    database_url = os.environ["DATABASE_URL"]
    parts = urlsplit(database_url)
    bench_db = f"{parts.path.lstrip('/') or 'pms'}_bench"
    redis_url = urlunsplit(urlsplit(os.environ["REDIS_URL"])._replace(path="/14"))
    env = {
        "DATABASE_URL": urlunsplit(parts._replace(path=f"/{bench_db}")),
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": os.environ.get("BENCH_BROKER_URL", redis_url),
        # Production settings: with DEBUG on, Django keeps every query in memory,
        # which slowed the workers measured here (an earlier run did that).
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(50),
        "CHANNEL_FETCH_ALLOW_LOOPBACK": "true",
        "LOG_LEVEL": "WARNING",
        # Benches start their own workers and no outbox publisher: publish after commit,
        # unless a bench runs the publisher itself (bench/latency.py, bench/api.py).
        "OUTBOX_PUBLISH": os.environ.get("BENCH_OUTBOX_PUBLISH", "commit"),
    }
    os.environ.update(env)
    RESULTS.mkdir(parents=True, exist_ok=True)  # logs and JSON; absent in a fresh clone
    _create_database(database_url, bench_db)
    _lock_bench(database_url, bench_db)
    return env


_bench_lock = None


def _lock_bench(admin_url: str, name: str) -> None:
    """One benchmark at a time per bench database: each flushes it and Redis db 14."""
    global _bench_lock
    import psycopg

    _bench_lock = psycopg.connect(admin_url, autocommit=True)
    locked = _bench_lock.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [name]).fetchone()
    if not locked or not locked[0]:
        raise SystemExit(f"another benchmark is running on {name}; run them one after the other")


def _create_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def django_setup(*, migrate: bool = True) -> None:
    """Django for this process; ``migrate=False`` in a helper process of a bench that did."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    if migrate:
        call_command("migrate", verbosity=0)


def flush_broker() -> None:
    import redis

    redis.Redis.from_url(os.environ["CELERY_BROKER_URL"]).flushdb()
    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()


@contextmanager
def workers(
    groups: dict[str, tuple[str, int]]
    | dict[str, tuple[str, int, int]]
    | dict[str, tuple[str, int, int, str]],
    include: str | None = None,
    app: str = "config",
    pool: str | None = None,
) -> Iterator[None]:
    """Start one ``celery worker`` per group {name: (queues, concurrency[, nice[, pool]])};
    stop them after. ``nice``: the group's CPU priority, as the Procfile gives bulk groups;
    ``pool``: the group's pool (``-P threads`` for the Procfile's I/O-bound groups).

    ``include``: extra modules the workers import (``celery worker --include``),
    e.g. ``bench.bare_tasks`` for bench-only tasks and handlers. ``app``: the Celery
    application (``bench.plain_celery`` for the plain-Celery baseline). ``pool``: the
    worker pool (``celery worker -P``; Celery's default, prefork, when not given).
    """
    RESULTS.mkdir(parents=True, exist_ok=True)
    processes = []
    for name, (queues, concurrency, *extra) in groups.items():
        nice = [extra[0]] if extra and extra[0] else []
        group_pool = extra[1] if len(extra) > 1 else pool
        log = open(RESULTS / f"worker-{name}.log", "w")  # noqa: SIM115 - closed with the process
        processes.append(
            subprocess.Popen(
                [
                    *(["nice", "-n", str(nice[0])] if nice else []),
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    app,
                    "worker",
                    "-Q",
                    queues,
                    "-n",
                    f"bench-{name}@%h",
                    "-c",
                    str(concurrency),
                    *(["-P", group_pool] if group_pool else []),
                    "--without-gossip",
                    "--without-mingle",
                    "-l",
                    "WARNING",
                    *(["--include", include] if include else []),
                ],
                cwd=ROOT,
                env={**os.environ, "CELERY_SKIP_CHECKS": "1"},
                stdout=log,
                stderr=log,
            )
        )
    try:
        _wait_for_workers(len(processes))
        yield
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


@contextmanager
def outbox_publisher(include: str | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """The Procfile's ``publisher`` (``manage.py outbox_publisher``), for a bench that
    emits with ``OUTBOX_PUBLISH=notify``; stopped (SIGTERM) after."""
    log = open(RESULTS / "outbox-publisher.log", "w")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "outbox_publisher",
            *(["--include", include] if include else []),
        ],
        cwd=ROOT,
        env={**os.environ, "OUTBOX_PUBLISH": "notify", "CELERY_SKIP_CHECKS": "1"},
        stdout=log,
        stderr=log,
    )
    try:
        time.sleep(2)  # Django's start-up, then its LISTEN
        if process.poll() is not None:
            raise RuntimeError(
                f"the outbox publisher exited; see {RESULTS / 'outbox-publisher.log'}"
            )
        yield process
    finally:
        stop(process)
        log.close()


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 20 s."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_for_workers(count: int, timeout: float = 60) -> None:
    from config.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=1) or []
        if len(replies) >= count:
            return
    raise TimeoutError(f"only {len(replies)} of {count} workers answered")


def ical_channels(tenant: Any, prop: Any, url: str, count: int, *, prefix: str) -> list[Any]:
    """``count`` iCal channels of ``prop`` reading ``url`` (a tenant's flood, or one)."""
    from channelsync.models import Channel

    return Channel.objects.bulk_create(
        [
            Channel(
                tenant=tenant,
                property=prop,
                name=f"{prefix} feed {i}",
                kind="ical",
                import_url=url,
                poll_interval=timedelta(days=1),
                next_poll_at=None,
                export_token=f"{prefix}-{i}",
            )
            for i in range(count)
        ],
        batch_size=1000,
    )


class StaticFeedServer:
    """A loopback HTTP server answering every path with one small iCal feed."""

    FEED = (
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\n"
        b"BEGIN:VEVENT\r\nUID:bench-1@example\r\nDTSTART;VALUE=DATE:20990101\r\n"
        b"DTEND;VALUE=DATE:20990103\r\nSUMMARY:Reserved\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )

    def __init__(self) -> None:
        feed = self.FEED

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/calendar")
                self.send_header("Content-Length", str(len(feed)))
                self.end_headers()
                self.wfile.write(feed)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/feed.ics"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> StaticFeedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "count": len(values),
        "median_ms": round(statistics.median(values) * 1000, 1) if values else float("nan"),
        "p95_ms": round(percentile(values, 95) * 1000, 1),
        "max_ms": round(max(values) * 1000, 1) if values else float("nan"),
    }


def write_result(name: str, data: dict[str, object]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({**data, "machine": machine()}, indent=2, default=str))
    return path


def machine() -> dict[str, object]:
    return {"host": socket.gethostname(), "cpus": os.cpu_count(), "python": sys.version.split()[0]}
