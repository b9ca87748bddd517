"""Smoke test of `make run`, as a new user meets it (run by .ci/run, or `make smoke`).

From this checkout, on free ports and the embedded default (no DATABASE_URL /
REDIS_URL): `make run`; the admin login, /api/schema/, /api/docs/ and /health/
answer 200; Flower 401 without and 200 with the generated credentials; bookings
POSTed through the API reach every handler; `kill -9` of a worker's main process
is survived (it is restarted, the web keeps serving, bookings made meanwhile
still complete); SIGINT to the process group leaves no process and no listening
port behind; a second `make run` finds the first run's bookings.

Exits 0 when all of it holds, else 1 with one line saying what did not.
Output of each `make run` is kept in tests/artifacts/smoke/.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import requests

REPO = Path(__file__).resolve().parent.parent
PYTHON = str(REPO / ".venv" / "bin" / "python")
ARTIFACTS = REPO / "tests" / "artifacts" / "smoke"
SUPERVISOR_CONF = REPO / ".local" / "supervisor" / "supervisord.conf"
PROGRAMS = {
    "web",
    "live",
    "operational",
    "messaging",
    "payments",
    "automation",
    "sync",
    "outbound",
    "publisher",
    "beat",
    "flower",
    "watchdog",
}
DEMO_ADMIN = ("admin", "demo-pass-2026")


class SmokeFailure(Exception):
    pass


def say(message: str) -> None:
    print(f"smoke: {message}", flush=True)


def free_ports(count: int) -> list[int]:
    """``count`` different free ports: each stays bound until all are chosen (binding port
    0 twice in a row may return the same port: a CI run once gave the web's to Flower)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # not up yet: keep the reason for the message
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise SmokeFailure(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


class Stack:
    """One `make run` in its own process group, as a terminal would run it."""

    def __init__(self, env: dict[str, str], label: str) -> None:
        self.env = env
        self.label = label
        self.log_path = ARTIFACTS / f"{label}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.web = f"http://127.0.0.1:{env['WEB_PORT']}"
        self.flower = f"http://127.0.0.1:{env['FLOWER_PORT']}"

    def start(self) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            ["make", "--no-print-directory", "run"],
            cwd=REPO,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        say(f"{self.label}: make run started (pid {self.process.pid}, log {self.log_path})")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def manage(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """A manage.py command beside the stack, as the README says it works: no
        DATABASE_URL, no DJANGO_DEBUG (it reads .local/stack.env and secrets.env)."""
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}
            and not k.startswith("DJANGO_")
        }
        return subprocess.run(
            [PYTHON, "manage.py", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def supervisor(self, *args: str) -> str:
        result = subprocess.run(
            [str(REPO / ".venv" / "bin" / "supervisorctl"), "-c", str(SUPERVISOR_CONF), *args],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return result.stdout

    def program_states(self) -> dict[str, tuple[str, int | None]]:
        states = {}
        for line in self.supervisor("status").splitlines():
            parts = line.split()
            if len(parts) >= 2:
                pid = re.search(r"pid (\d+)", line)
                states[parts[0]] = (parts[1], int(pid.group(1)) if pid else None)
        return states

    def all_running(self) -> bool:
        if not self.alive():
            raise SmokeFailure(f"{self.label}: make run exited early; see {self.log_path}")
        states = self.program_states()
        return states.keys() >= PROGRAMS and all(states[p][0] == "RUNNING" for p in PROGRAMS)

    def group_processes(self) -> list[psutil.Process]:
        """Every process of the stack: make's group and each program's own group."""
        assert self.process is not None
        found = {}
        groups = {self.process.pid}
        for _state, pid in self.program_states().values():
            if pid:
                groups.add(pid)
        for proc in psutil.process_iter(["pid"]):
            try:
                if os.getpgid(proc.pid) in groups:
                    found[proc.pid] = proc
            except (ProcessLookupError, psutil.Error):
                continue
        return list(found.values())

    def interrupt(self, timeout: float = 120) -> None:
        """Ctrl-C: SIGINT to the process group; then nothing may be left."""
        assert self.process is not None
        before = self.group_processes()
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            message = f"{self.label}: make run still runs {timeout:.0f}s after SIGINT"
            raise SmokeFailure(message) from None
        _gone, alive = psutil.wait_procs(before, timeout=10)
        if alive:
            names = ", ".join(f"{p.pid} {' '.join(p.cmdline()[:3])}" for p in alive)
            for proc in alive:
                proc.kill()
            raise SmokeFailure(f"{self.label}: processes left after SIGINT: {names}")

    def kill(self) -> None:
        """After a failure: stop whatever this run left, politely first."""
        if not self.alive():
            return
        assert self.process is not None
        left = self.group_processes()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGINT)
        _gone, alive = psutil.wait_procs(left, timeout=60)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()


def login_to_admin(stack: Stack) -> requests.Session:
    session = requests.Session()
    wait_for(
        "the admin login page",
        lambda: session.get(f"{stack.web}/admin/login/", timeout=30).status_code == 200,
        120,
        interval=2,
    )
    token = session.cookies.get("csrftoken")
    answer = session.post(
        f"{stack.web}/admin/login/?next=/admin/",
        data={
            "username": DEMO_ADMIN[0],
            "password": DEMO_ADMIN[1],
            "csrfmiddlewaretoken": token,
            "next": "/admin/",
        },
        headers={"Referer": f"{stack.web}/admin/login/"},
        timeout=30,
    )
    if answer.status_code != 200 or "/admin/login/" in answer.url:
        raise SmokeFailure(f"admin login as {DEMO_ADMIN[0]} failed ({answer.status_code})")
    if "Log out" not in answer.text and "logout" not in answer.text:
        raise SmokeFailure("the admin index after login shows no logout link")
    return session


def expect_status(url: str, status: int, **kwargs: Any) -> None:
    answer = requests.get(url, timeout=30, **kwargs)
    if answer.status_code != status:
        raise SmokeFailure(f"GET {url} answered {answer.status_code}, expected {status}")


def flower_saw_tasks(stack: Stack) -> bool:
    """Flower's API lists at least one task that a worker received (task events on)."""
    answer = requests.get(
        f"{stack.flower}/api/tasks", params={"limit": 5}, auth=flower_credentials(), timeout=10
    )
    return answer.status_code == 200 and bool(answer.json())


def flower_credentials() -> tuple[str, str]:
    for line in (REPO / ".local" / "secrets.env").read_text().splitlines():
        if line.startswith("FLOWER_BASIC_AUTH="):
            user, _, password = line.split("=", 1)[1].partition(":")
            return user, password
    raise SmokeFailure(".local/secrets.env holds no FLOWER_BASIC_AUTH")


def property_ids(stack: Stack) -> list[str]:
    result = stack.manage(
        "shell",
        "-v",
        "0",
        "-c",
        "from pms.models import Property; "
        "print(*Property.objects.order_by('id').values_list('public_id', flat=True))",
    )
    if result.returncode != 0:
        raise SmokeFailure(f"manage.py shell beside make run failed: {result.stderr.strip()}")
    ids = result.stdout.strip().splitlines()[-1].split() if result.stdout.strip() else []
    if not ids:
        raise SmokeFailure("the demo data has no property")
    return ids


def book(
    stack: Stack, properties: list[str], number: int, first_day: date | None = None
) -> dict[str, Any]:
    """POST a two-night booking on the first free dates (an earlier smoke run of this
    checkout may hold some), spread over the demo properties."""
    property_id = properties[number % len(properties)]
    first_day = first_day or date.today() + timedelta(days=120 + random.randrange(0, 400))
    for attempt in range(40):
        check_in = first_day + timedelta(days=3 * attempt)
        answer = requests.post(
            f"{stack.web}/api/v1/bookings/",
            json={
                "property": property_id,
                "check_in": check_in.isoformat(),
                "check_out": (check_in + timedelta(days=2)).isoformat(),
                "guests": 2,
                "guest": {
                    "name": f"Smoke Guest {number}",
                    "email": f"smoke-{uuid.uuid4().hex[:12]}@example.test",
                },
            },
            headers={"Idempotency-Key": str(uuid.uuid4())},
            timeout=30,
        )
        if answer.status_code == 201:
            return dict(answer.json())
        if answer.status_code != 409:
            break
    raise SmokeFailure(f"POST booking {number} answered {answer.status_code}: {answer.text}")


def live_calendar_shows_a_booking(
    stack: Stack, session: requests.Session, properties: list[str]
) -> None:
    """The calendar of all homes, open on the live server, shows a booking made meanwhile."""
    from urllib.parse import urlencode

    from websockets.sync.client import connect

    start = date.today() + timedelta(days=30 + random.randrange(0, 60))
    query = urlencode(
        {"path": "/admin/bookings/booking/calendar/", "query": f"days=35&start={start}"}
    )
    headers = {"Cookie": f"sessionid={session.cookies.get('sessionid')}", "Origin": stack.web}
    live = f"ws://127.0.0.1:{stack.env['LIVE_PORT']}/live/?{query}"
    with connect(live, additional_headers=headers, open_timeout=30) as page:
        json.loads(page.recv(timeout=30))  # joining renders the page once
        guest = book(stack, properties, 0, first_day=start)["guest_name"]
        deadline = time.monotonic() + 15
        while (left := deadline - time.monotonic()) > 0:
            try:
                if guest in page.recv(timeout=left):
                    return
            except TimeoutError:
                break
    raise SmokeFailure(f"the open calendar did not show {guest!r} within 15 s")


def reconcile_settled(stack: Stack, references: list[str]) -> bool:
    """Every delivery applied (reconcile ok, nothing in flight) and every handler of
    the bookings' events done."""
    result = stack.manage("reconcile", "--json")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    if not (report["ok"] and report["in_flight"] == 0):
        return False
    check = stack.manage(
        "shell",
        "-v",
        "0",
        "-c",
        "from pms.models import EventDelivery; from bookings.models import Booking; "
        f"ids = [str(i) for i in Booking.objects.filter(reference__in={references!r})"
        ".values_list('id', flat=True)]; "
        "qs = EventDelivery.objects.filter(event__aggregate_id__in=ids); "
        "print(qs.count(), qs.exclude(status='done').count())",
    )
    if check.returncode != 0:
        raise SmokeFailure(f"could not read the deliveries: {check.stderr.strip()}")
    total, not_done = (int(x) for x in check.stdout.split()[-2:])
    return total > 0 and not_done == 0


def alerts_opened_since(stack: Stack, started: datetime) -> list[str]:
    """Operator incidents opened (not merely pending) since ``started``: a healthy
    start, a worker restart of a few seconds, must page nobody."""
    result = stack.manage(
        "shell",
        "-v",
        "0",
        "-c",
        "from datetime import datetime; from pms.models.monitoring import AlertIncident; "
        f"since = datetime.fromisoformat({started.isoformat()!r}); "
        "print(*[f'{i.rule.kind}:{i.subject}' for i in AlertIncident.objects"
        ".filter(opened_at__gte=since).exclude(status='pending').select_related('rule')])",
    )
    if result.returncode != 0:
        raise SmokeFailure(f"could not read the alert incidents: {result.stderr.strip()}")
    lines = result.stdout.strip().splitlines()
    return lines[-1].split() if lines else []


def run(env: dict[str, str]) -> None:
    ports = {name: int(env[name]) for name in env if name.endswith("_PORT")}
    stack = Stack(env, "first-run")
    run_started = datetime.now(UTC)
    stack.start()
    try:
        wait_for("the web to answer", lambda: listening(ports["WEB_PORT"]), 600)
        wait_for("every program RUNNING", stack.all_running, 180)
        say("first run: every program is RUNNING")
        session = login_to_admin(stack)
        for path in ("/api/schema/", "/api/docs/", "/health/live/"):
            expect_status(f"{stack.web}{path}", 200)
        # /health/ pings a worker on every queue: give the workers time to join.
        wait_for(
            "/health/ to answer 200",
            lambda: requests.get(f"{stack.web}/health/", timeout=15).status_code == 200,
            120,
            interval=3,
        )
        expect_status(f"{stack.flower}/", 401)
        expect_status(f"{stack.flower}/", 200, auth=flower_credentials())
        say("first run: admin login, /api/schema/, /api/docs/, /health/, Flower 401/200 ok")

        properties = property_ids(stack)
        first = [book(stack, properties, n) for n in range(3)]
        references = [b["reference"] for b in first]
        wait_for("the bookings' deliveries", lambda: reconcile_settled(stack, references), 180, 5)
        say(f"first run: {len(first)} bookings reached every handler; reconcile ok")
        expect_status(f"http://127.0.0.1:{stack.env['LIVE_PORT']}/live/health", 200)
        expect_status(f"http://127.0.0.1:{stack.env['LIVE_PORT']}/admin/", 404)
        live_calendar_shows_a_booking(stack, session, properties)
        say("first run: an open calendar showed a new booking without a reload (live server)")
        # Workers send task events only while a monitor asks (CELERY_TASK_EVENTS off):
        # Flower must have turned them on and seen the deliveries' tasks.
        wait_for("Flower to list the deliveries' tasks", lambda: flower_saw_tasks(stack), 60, 3)
        say("first run: Flower enabled task events and lists the tasks")

        # A worker's main process dies while a booking's deliveries are being handled:
        # it is restarted, the rest keeps serving, nothing is lost.
        _state, victim = stack.program_states()["operational"]
        assert victim is not None
        during = [book(stack, properties, 3)]
        os.kill(victim, signal.SIGKILL)
        say(f"first run: kill -9 of the operational worker's main process (pid {victim})")
        during += [book(stack, properties, n) for n in range(4, 6)]
        references += [b["reference"] for b in during]
        expect_status(f"{stack.web}/health/live/", 200)

        def restarted() -> bool:
            state, pid = stack.program_states()["operational"]
            return state == "RUNNING" and pid not in (None, victim)

        wait_for("the operational worker to be restarted", restarted, 120)
        wait_for("the bookings' deliveries", lambda: reconcile_settled(stack, references), 300, 5)
        say("first run: worker restarted, the web kept serving, every booking applied")

        # The outbox publisher (OUTBOX_PUBLISH=notify) dies: bookings still commit, and
        # what they emitted is sent by its restarted self (or, later, by beat's relay).
        _state, publisher = stack.program_states()["publisher"]
        assert publisher is not None
        os.kill(publisher, signal.SIGKILL)
        say(f"first run: kill -9 of the outbox publisher (pid {publisher})")
        after = [book(stack, properties, n) for n in range(6, 8)]
        references += [b["reference"] for b in after]

        def publisher_restarted() -> bool:
            state, pid = stack.program_states()["publisher"]
            return state == "RUNNING" and pid not in (None, publisher)

        wait_for("the outbox publisher to be restarted", publisher_restarted, 120)
        wait_for("the bookings' deliveries", lambda: reconcile_settled(stack, references), 300, 5)
        say("first run: publisher restarted, every booking applied")
        if not stack.alive():
            raise SmokeFailure("make run exited after the worker was killed")

        paged = alerts_opened_since(stack, run_started)
        if paged:
            raise SmokeFailure(f"operators were paged during a healthy run: {paged}")
        say("first run: no alert opened (start-up grace, for: durations)")

        stack.interrupt()
        left = [name for name, port in ports.items() if listening(port)]
        if left:
            raise SmokeFailure(f"still listening after SIGINT: {', '.join(left)}")
        say("first run: SIGINT stopped every process; no port left listening")
    finally:
        stack.kill()

    second = Stack(env, "second-run")
    second.start()
    try:
        wait_for("the web to answer again", lambda: listening(ports["WEB_PORT"]), 600)
        wait_for("every program RUNNING", second.all_running, 180)
        kept = first[0]
        answer = wait_for(
            "the first run's booking",
            lambda: requests.get(
                f"{second.web}/api/v1/bookings/{kept['reference']}/",
                headers={"Authorization": f"Bearer {kept['token']}"},
                timeout=30,
            ),
            120,
            interval=2,
        )
        if answer.status_code != 200:
            raise SmokeFailure(
                f"the second run does not find booking {kept['reference']} ({answer.status_code})"
            )
        say(f"second run: booking {kept['reference']} from the first run is still there")
        second.interrupt()
        left = [name for name, port in ports.items() if listening(port)]
        if left:
            raise SmokeFailure(f"still listening after the second SIGINT: {', '.join(left)}")
    finally:
        second.kill()


def main() -> int:
    env = {
        k: v
        for k, v in os.environ.items()
        # The embedded default, as on a fresh machine.
        if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "FLOWER_BASIC_AUTH"}
    }
    web, flower, live, postgres, redis = (str(port) for port in free_ports(5))
    env.update(
        WEB_PORT=web,
        FLOWER_PORT=flower,
        LIVE_PORT=live,
        EMBEDDED_PG_PORT=postgres,
        EMBEDDED_REDIS_PORT=redis,
        # A delivery lost with the killed worker is re-sent after this many seconds.
        OUTBOX_DELIVERY_DEADLINE="10",
        OPS_WATCHDOG_INTERVAL="10",
        # Eight bookings over the demo homes per run, and runs of one checkout may follow
        # each other within the hour: the cap on unpaid online bookings per home and hour
        # (5) is tested elsewhere (tests/bookings), not here.
        API_BOOKINGS_PER_PROPERTY_PER_HOUR="1000",
    )
    started = time.monotonic()
    try:
        pid_file = REPO / ".local" / "supervisor" / "supervisord.pid"
        if pid_file.exists() and psutil.pid_exists(int(pid_file.read_text().split()[0])):
            raise SmokeFailure("a `make run` of this checkout is running: stop it first")
        run(env)
    except (SmokeFailure, requests.RequestException, subprocess.SubprocessError, OSError) as exc:
        print(f"smoke: FAILED: {exc}", file=sys.stderr)
        return 1
    say(f"passed in {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
