"""Live pages under load: 200 open pages while guests book 20 stays a second.

The stack as the Procfile runs it, on the bench database: gunicorn (2 workers, production
settings), the live server (uvicorn, ``config.asgi``), the outbox publisher and the
worker groups. Two tenants of 30 homes each; each has 10 managers, and each manager
has 10 pages open (4 dashboards, 4 calendars of all homes, 2 calendars of one home):
200 WebSocket connections, as the browsers' pages make them (session cookie, Origin),
held by a separate client process that only counts what arrives.

One run, two phases of the same load, alternated over ``--rounds``: guests POST 20
bookings a second through the API for ``--seconds`` (open loop: a request leaves on
schedule whether or not the earlier ones have answered), with no page open, then with
the 200 pages open. Printed, over the rounds:
the bookings' request latency (p50, p95, p99) in each phase and the ratio of the p95s
(target <= 1.5), and how many pages received an update during the loaded phase (target:
every one) with the updates per page.

Run: make bench-live (or .venv/bin/python -m devstack exec -- .venv/bin/python bench/live_pages.py)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import (
    RESULTS,
    ROOT,
    bench_environment,
    django_setup,
    flush_broker,
    outbox_publisher,
    percentile,
    stop,
    workers,
    write_result,
)
from testkit.processes import asgi_server_command, free_port

TARGET_RATIO = 1.5  # p95 with 200 pages open over p95 with none (issue 22)
TENANTS = ("north", "south")
HOMES_PER_TENANT = 30
MANAGERS_PER_TENANT = 10
# Each manager's open pages: (path template, how many of it).
PAGES_PER_MANAGER = (("/admin/", 4), ("/admin/bookings/booking/calendar/", 4), ("home", 2))
# The Procfile's worker groups. On this one machine they stand for the worker machines
# of a real deployment: at a lower CPU priority (nice), as are the pages' client (the
# browsers), so what the latency measures is the web and the live server beside it.
WORKER_NICE = 10
WORKER_GROUPS: dict[str, tuple[str, int, int, str]] = {  # queues, concurrency, nice, pool
    "operational": ("bookings,accounting,default", 2, WORKER_NICE, ""),
    "messaging": ("messaging", 8, WORKER_NICE, "threads"),
    "payments": ("payments,fallback", 1, WORKER_NICE, ""),
    "automation": ("automation,messaging_batch,bulk", 2, WORKER_NICE, ""),
    "sync": ("channelsync", 1, WORKER_NICE, ""),
    "outbound": ("outbound", 8, WORKER_NICE, "threads"),
}


def build() -> dict[str, Any]:
    """Two tenants, their homes and managers; a signed-in session per manager."""
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
    )
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command

    from pms.models import Property
    from tenants.choices import Role
    from tenants.models import Membership, Tenant

    call_command("flush", interactive=False, verbosity=0)
    world: dict[str, Any] = {"homes": [], "managers": []}
    for slug in TENANTS:
        tenant = Tenant.objects.create(name=slug.title(), slug=slug)
        homes = Property.objects.bulk_create(
            [
                Property(
                    tenant=tenant,
                    name=f"{slug.title()} {i}",
                    slug=f"{slug}-{i}",
                    nightly_rate=100,
                    max_guests=4,
                )
                for i in range(HOMES_PER_TENANT)
            ]
        )
        world["homes"] += [(str(home.public_id), home.pk, slug) for home in homes]
        for index in range(MANAGERS_PER_TENANT):
            user = get_user_model().objects.create_user(
                f"{slug}-manager-{index}", password=secrets.token_urlsafe(12), is_staff=True
            )
            Membership.objects.create(user=user, tenant=tenant, role=Role.MANAGER)
            session = SessionStore()
            session[SESSION_KEY] = str(user.pk)
            session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
            session[HASH_SESSION_KEY] = user.get_session_auth_hash()
            session.create()
            home_ids = [home.pk for home in homes[:2]]
            world["managers"].append(
                {"tenant": slug, "session": session.session_key, "homes": home_ids}
            )
    return world


def page_list(world: dict[str, Any]) -> list[dict[str, str]]:
    pages = []
    for manager in world["managers"]:
        for path, count in PAGES_PER_MANAGER:
            for n in range(count):
                if path == "home":
                    home = manager["homes"][n % len(manager["homes"])]
                    target = f"/admin/bookings/booking/property/{home}/calendar/"
                else:
                    target = path
                pages.append(
                    {"tenant": manager["tenant"], "session": manager["session"], "path": target}
                )
    return pages


def start_web(port: int, static_root: str) -> subprocess.Popen[bytes]:
    from bench.api import start_gunicorn

    return start_gunicorn(port, 2, static_root, outbox_publish="notify")


def start_live(port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ALLOWED_HOSTS": "127.0.0.1", "LOG_LEVEL": "WARNING"}
    log = open(RESULTS / "live-server.log", "w")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        # As the Procfile runs it: at LIVE_NICE, so its renders yield to the web.
        ["nice", "-n", os.environ.get("LIVE_NICE", "5"), *asgi_server_command(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
    )
    import socket

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the live server exited; see {RESULTS / 'live-server.log'}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.2)
    stop(process)
    raise TimeoutError("the live server did not answer")


# -- the pages' client process -------------------------------------------------------
def pages_client(spec_path: str) -> None:
    """Hold every page's connection; count what each receives; write the counts at "stop"."""
    from websockets.asyncio.client import connect

    spec = json.loads(Path(spec_path).read_text())
    counts = [0] * len(spec["pages"])
    joined = [False] * len(spec["pages"])
    stop_file, mark_file = Path(spec["stop"]), Path(spec["mark"])
    since_mark = [0] * len(spec["pages"])

    closes: dict[str, int] = {}

    async def hold(index: int, page: dict[str, str]) -> None:
        """One page, as live.js keeps it: reconnect after a close, unless the close is final."""
        import random
        from urllib.parse import urlencode

        from websockets.exceptions import ConnectionClosed

        query = urlencode({"path": page["path"], "query": ""})
        url = f"ws://127.0.0.1:{spec['live_port']}/live/?{query}"
        headers = {"Cookie": f"sessionid={page['session']}", "Origin": spec["origin"]}
        while True:
            code: int | str | None
            try:
                async with connect(
                    url, additional_headers=headers, max_size=None, compression=None
                ) as ws:
                    try:
                        async for _message in ws:
                            if not joined[index]:
                                joined[index] = True
                                continue
                            counts[index] += 1
                            if mark_file.exists():
                                since_mark[index] += 1
                    except ConnectionClosed:
                        pass
                    code = ws.close_code
            except (OSError, TimeoutError) as exc:
                code = type(exc).__name__
            closes[str(code)] = closes.get(str(code), 0) + 1
            if code in (4003, 4029, 4401, 4404):
                return
            await asyncio.sleep(random.uniform(0.5, 2.0))

    async def main() -> None:
        tasks = [asyncio.create_task(hold(i, page)) for i, page in enumerate(spec["pages"])]
        while not stop_file.exists():
            await asyncio.sleep(0.2)
            failed = [task for task in tasks if task.done() and task.exception()]
            if failed:
                raise failed[0].exception()  # type: ignore[misc]
            waiting: dict[str, int] = {}
            for index, page in enumerate(spec["pages"]):
                if not joined[index]:
                    state = "closed" if tasks[index].done() else "open"
                    key = f"{page['tenant']} {page['path']} ({state})"
                    waiting[key] = waiting.get(key, 0) + 1
            Path(spec["ready"]).write_text(json.dumps({"joined": sum(joined), "waiting": waiting}))
        for task in tasks:
            task.cancel()
        Path(spec["result"]).write_text(
            json.dumps(
                {
                    "joined": sum(joined),
                    "updates": since_mark,
                    "all_updates": counts,
                    "closes": closes,
                }
            )
        )

    asyncio.run(main())


def cpu_seconds(processes: list[subprocess.Popen[bytes]]) -> dict[str, float]:
    """CPU seconds used so far by the web (gunicorn and its workers), the live server and
    the pages' client."""
    import psutil

    names = ("web", "live server", "pages' client")
    used = {}
    for name, process in zip(names, processes, strict=False):
        try:
            tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(True)]
            used[name] = sum(sum(p.cpu_times()[:2]) for p in tree)
        except psutil.NoSuchProcess:
            used[name] = 0.0
    return used


def wait_for_handlers(timeout: float = 180) -> None:
    from pms.choices import DeliveryStatus
    from pms.models import EventDelivery

    deadline = time.monotonic() + timeout
    while EventDelivery.objects.filter(status=DeliveryStatus.PENDING).exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the handlers did not catch up")
        time.sleep(0.5)


@contextmanager
def pages_open(
    pages: list[dict[str, str]], live_port: int, origin: str, scratch: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """The pages' client, every page joined; at the end its counts in ``scratch/result``."""
    scratch.mkdir()
    spec = {
        "pages": pages,
        "live_port": live_port,
        "origin": origin,
        **{name: str(scratch / name) for name in ("stop", "mark", "ready", "result")},
    }
    spec_file = str(scratch / "spec.json")
    Path(spec_file).write_text(json.dumps(spec))
    log = open(RESULTS / "live-pages-client.log", "a")  # noqa: SIM115 - closed with it
    client = subprocess.Popen(
        ["nice", "-n", str(WORKER_NICE), sys.executable, __file__, "--pages-client", spec_file],
        cwd=ROOT,
        stdout=log,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            ready = (
                json.loads((scratch / "ready").read_text() or "{}")
                if (scratch / "ready").exists()
                else {}
            )
            if ready.get("joined") == len(pages):
                break
            if client.poll() is not None:
                raise RuntimeError("the pages' client exited; see live-pages-client.log")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the pages did not all join; not yet: {ready.get('waiting')}")
            time.sleep(0.5)
        time.sleep(3)  # the join renders settle
        (scratch / "mark").write_text("")
        yield client
        (scratch / "stop").write_text("")
        client.wait(60)
    finally:
        stop(client)
        log.close()


# -- the load --------------------------------------------------------------------------
def book_at_rate(
    web: str, homes: list[tuple[str, int, str]], rate: int, seconds: int, night_of: Any
) -> dict[str, Any]:
    """POST ``rate`` one-night bookings a second for ``seconds``; their latencies.

    Booking ``i`` is for home ``i % homes`` on night ``night_of(i // homes)`` from today.
    """
    import requests
    from django.utils import timezone

    total = rate * seconds
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    local = threading.local()
    today = timezone.localdate()
    started = time.monotonic() + 0.5

    def post(index: int) -> None:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        home = homes[index % len(homes)]
        check_in = today + timedelta(days=night_of(index // len(homes)))
        delay = started + index / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sent = time.monotonic()
        answer = session.post(
            f"{web}/api/v1/bookings/",
            json={
                "property": home[0],
                "check_in": check_in.isoformat(),
                "check_out": (check_in + timedelta(days=1)).isoformat(),
                "guests": 2,
                "guest": {"name": f"Guest {index}", "email": f"g{uuid.uuid4().hex[:10]}@x.test"},
            },
            headers={"Idempotency-Key": str(uuid.uuid4())},
            timeout=30,
        )
        took = time.monotonic() - sent
        with lock:
            if answer.status_code == 201:
                latencies.append(took)
            else:
                errors.append(f"{answer.status_code} {answer.text[:120]}")

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(post, range(total)))
    return {"latencies": latencies, "errors": errors}


def latency_summary(phases: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = [value for phase in phases for value in phase["latencies"]]
    errors = [error for phase in phases for error in phase["errors"]]
    return {
        "ok": len(latencies),
        "errors": len(errors),
        "first_errors": errors[:3],
        "p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "p95_ms": round(percentile(latencies, 95) * 1000, 1),
        "p99_ms": round(percentile(latencies, 99) * 1000, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=int, default=20, help="per phase")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rate", type=int, default=20)
    parser.add_argument("--pages-client", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pages_client:
        pages_client(args.pages_client)
        return 0

    bench_environment()
    static_root = tempfile.mkdtemp(prefix="bench-static-")
    # The admin pages need the static files' manifest (production storage): this process,
    # gunicorn and the live server all use bench.settings_bench, which reads STATIC_ROOT.
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings_bench"
    os.environ["BENCH_STATIC_ROOT"] = static_root
    django_setup()
    flush_broker()
    from django.core.management import call_command

    call_command("collectstatic", interactive=False, verbosity=0)
    world = build()
    pages = page_list(world)
    web_port, live_port = free_port(), free_port()
    web = f"http://127.0.0.1:{web_port}"
    scratch = Path(tempfile.mkdtemp(prefix="bench-live-"))
    counts: dict[str, Any]
    results: dict[str, Any] = {
        "pages": len(pages),
        "rate": args.rate,
        "seconds": args.seconds,
        "rounds": args.rounds,
    }
    processes: list[subprocess.Popen[bytes]] = []
    alone: list[dict[str, Any]] = []
    beside: list[dict[str, Any]] = []
    updates: list[int] = []
    cpu: dict[str, float] = {}
    closes: dict[str, int] = {}  # connections the server closed during the phases, by code
    try:
        with workers(WORKER_GROUPS), outbox_publisher():
            processes.append(start_web(web_port, static_root))
            processes.append(start_live(live_port))
            # Warm up: the first requests of each gunicorn worker import and connect.
            book_at_rate(web, world["homes"], 5, 2, night_of=lambda n: 200 + n)
            for round_ in range(args.rounds):
                # Rounds alternate the two phases, so that what else the machine does
                # weighs on both alike. Nights: the phases with pages book into the
                # calendars' first 14 days (today and tomorrow among them: the
                # dashboards' arrivals); the others far beyond.
                print(f"round {round_ + 1}: no page open ...", flush=True)
                alone.append(
                    book_at_rate(
                        web,
                        world["homes"],
                        args.rate,
                        args.seconds,
                        night_of=lambda n, r=round_: 40 + 20 * r + n,
                    )
                )
                print(f"round {round_ + 1}: {len(pages)} pages open ...", flush=True)
                with pages_open(pages, live_port, web, scratch / f"round-{round_}") as client:
                    processes.append(client)
                    before = cpu_seconds(processes)
                    beside.append(
                        book_at_rate(
                            web,
                            world["homes"],
                            args.rate,
                            args.seconds,
                            night_of=lambda n, r=round_: (2 * n + r) % 14,
                        )
                    )
                    after = cpu_seconds(processes)
                    for name in after:
                        cpu[name] = cpu.get(name, 0.0) + after[name] - before[name]
                    # The handlers (niced) may still be catching up: their effects are
                    # what the home calendars show. Then the last renders arrive.
                    wait_for_handlers()
                    time.sleep(3)
                processes.remove(client)
                counts = json.loads((scratch / f"round-{round_}" / "result").read_text())
                updates += counts["updates"]
                for code, n in counts["closes"].items():
                    closes[code] = closes.get(code, 0) + n
    finally:
        for process in processes:
            stop(process)
    results["no_pages"] = latency_summary(alone)
    results["pages_open"] = latency_summary(beside)
    results["cpu_seconds_while_loaded"] = {name: round(value, 1) for name, value in cpu.items()}
    results["closed_by_server"] = closes
    results["pages_updated"] = sum(1 for n in updates if n > 0)
    results["page_rounds"] = len(updates)
    results["updates_per_page"] = {
        "min": min(updates),
        "median": sorted(updates)[len(updates) // 2],
        "max": max(updates),
    }
    ratio = results["pages_open"]["p95_ms"] / max(results["no_pages"]["p95_ms"], 0.1)
    results["p95_ratio"] = round(ratio, 2)
    ok = (
        ratio <= TARGET_RATIO
        and results["pages_updated"] == len(updates)
        and results["no_pages"]["errors"] == 0
        and results["pages_open"]["errors"] == 0
    )
    print()
    print("| phase | bookings | p50 ms | p95 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|")
    for key, label in (("no_pages", "no page open"), ("pages_open", f"{len(pages)} pages open")):
        row = results[key]
        print(
            f"| {label} | {row['ok']} | {row['p50_ms']} | {row['p95_ms']} | {row['p99_ms']} "
            f"| {row['errors']} |"
        )
    print(
        f"\np95 ratio {ratio:.2f} (target <= {TARGET_RATIO}); pages updated in each round "
        f"{results['pages_updated']}/{len(updates)}; updates per page and round "
        f"{results['updates_per_page']}"
    )
    print(f"CPU seconds during the phases with pages: {results['cpu_seconds_while_loaded']}")
    print(f"connections the server closed (then reopened), by code: {closes or 'none'}")
    write_result("live_pages", results)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
