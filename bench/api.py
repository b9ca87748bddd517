"""API throughput: POST booking and GET availability vs a trivial DRF endpoint, one gunicorn.

gunicorn with production-like settings (DEBUG off, generated secret key, 2 sync
workers, as in the Procfile) on 127.0.0.1 serves the product's URLs plus a
bench-only trivial DRF endpoint (settings module bench.settings_bench, URLconf
bench.trivial_urls; no production URL is added), and, for scale, the same
endpoint doing one INSERT in a transaction. The load generator is ``wrk``
on loopback (Lua scripts bench/wrk_*.lua: every POST has its own
Idempotency-Key, guest and date range, so none conflicts). Throttles are raised
to 1,000,000/min (and the per-home cap on unpaid bookings likewise) so they count but
never refuse. No Celery workers run: the
bookings' messages wait in the bench broker. POST booking runs twice: as the
Procfile runs it (``OUTBOX_PUBLISH=notify``: the request only NOTIFYs and the outbox
publisher process sends), then with the request publishing after its commit.
Printed per endpoint: requests/s, p50, p99, errors; and the ratios to the trivial
endpoint with one INSERT. Targets (issue 18): POST booking >= 0.3x, GET availability
>= 0.6x.

Run: make bench-api (or .venv/bin/python -m devstack exec -- .venv/bin/python bench/api.py)
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import (
    RESULTS,
    ROOT,
    bench_environment,
    django_setup,
    flush_broker,
    outbox_publisher,
    stop,
    write_result,
)
from testkit.processes import free_port

TARGET_POST = 0.3  # POST booking over trivial DRF + one INSERT (issue 18)
TARGET_AVAILABILITY = 0.6  # GET availability over the same
# Appended to each wrk script: one machine-readable line with exact percentiles.
DONE_LUA = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"non_2xx": %d, "socket_errors": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def build(properties: int, path: Path) -> None:
    from django.core.management import call_command

    from bench.bare_tasks import create_tables
    from pms.models import Property
    from tenants.models import Tenant

    call_command("flush", interactive=False, verbosity=0)
    create_tables()  # bench_bare: the trivial write endpoint's table
    tenant = Tenant.objects.create(name="Bench", slug="bench")
    props = Property.objects.bulk_create(
        [
            Property(tenant=tenant, name=f"P{i}", slug=f"p{i}", nightly_rate=100, max_guests=4)
            for i in range(properties)
        ]
    )
    path.write_text("".join(f"{p.public_id}\n" for p in props))


def start_gunicorn(
    port: int, workers: int, static_root: str, outbox_publish: str = "commit"
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings_bench",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DJANGO_SECURE_COOKIES": "false",
        "DJANGO_HSTS_SECONDS": "0",
        "API_THROTTLE_ANON": "1000000/min",
        "API_THROTTLE_GUEST_TOKEN": "1000000/min",
        "API_THROTTLE_BOOKING_CREATE": "1000000/min",
        # The calendar-squatting cap (5 unpaid online bookings per home and hour): checked
        # on every POST, as in production, but never reached here.
        "API_BOOKINGS_PER_PROPERTY_PER_HOUR": "1000000",
        "BENCH_STATIC_ROOT": static_root,
        "LOG_LEVEL": "WARNING",
        "OUTBOX_PUBLISH": outbox_publish,
    }
    log = open(RESULTS / "gunicorn.log", "w")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("gunicorn")),
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--timeout",
            "30",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited; see {RESULTS / 'gunicorn.log'}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/bench/trivial/", timeout=2):
                return process
        except OSError:
            time.sleep(0.3)
    stop(process)
    raise TimeoutError("gunicorn did not answer")


def run_wrk(
    url: str,
    script: Path | None,
    seconds: int,
    threads: int,
    connections: int,
    tmp: Path,
    env: dict[str, str],
) -> dict[str, float]:
    lua = tmp / f"run-{time.monotonic_ns()}.lua"
    lua.write_text((script.read_text() if script else "") + DONE_LUA)
    command = [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{seconds}s",
        "-s",
        str(lua),
        url,
    ]
    out = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=seconds + 60,
        check=True,
    ).stdout
    line = next(raw for raw in out.splitlines() if raw.startswith("BENCH_JSON "))
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    duration = raw["duration_us"] / 1e6
    return {
        "requests": raw["requests"],
        "requests_per_s": round(raw["requests"] / duration, 1),
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "non_2xx": raw["non_2xx"],
        "socket_errors": raw["socket_errors"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15, help="per endpoint")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gunicorn-workers", type=int, default=2)
    parser.add_argument("--properties", type=int, default=400)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2

    bench_environment()
    django_setup()
    flush_broker()
    from bookings.models import Booking

    tmp = Path(tempfile.mkdtemp(prefix="bench-api-"))
    static_root = tmp / "static"
    static_root.mkdir()
    props_file = tmp / "properties.txt"
    build(args.properties, props_file)
    homes = props_file.read_text().splitlines(keepends=True)
    second_half = tmp / "properties-2.txt"
    second_half.write_text("".join(homes[len(homes) // 2 :]))
    props_file.write_text("".join(homes[: len(homes) // 2]))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "BENCH_PROPERTIES": str(props_file),
        "BENCH_THREADS": str(args.threads),
        "BENCH_RUN": secrets.token_hex(4),
    }
    wrk = (args.seconds, args.threads, args.connections, tmp, env)
    booking_script = ROOT / "bench" / "wrk_booking.lua"
    # As the Procfile runs it: requests only NOTIFY, the outbox publisher sends.
    gunicorn = start_gunicorn(port, args.gunicorn_workers, str(static_root), "notify")
    try:
        run_wrk(
            f"{base}/bench/trivial/", None, 3, args.threads, args.connections, tmp, env
        )  # warm-up
        results = {
            "trivial DRF GET": run_wrk(f"{base}/bench/trivial/", None, *wrk),
            "trivial DRF + INSERT": run_wrk(
                f"{base}/bench/trivial-write/", ROOT / "bench" / "wrk_post.lua", *wrk
            ),
            "GET availability": run_wrk(base, ROOT / "bench" / "wrk_availability.lua", *wrk),
        }
        with outbox_publisher():
            results["POST booking"] = run_wrk(base, booking_script, *wrk)
    finally:
        stop(gunicorn)
    # For comparison: the request publishes its deliveries itself, after commit (on the
    # other half of the homes, so its stays never meet the first run's).
    env["BENCH_RUN"] = secrets.token_hex(4)
    env["BENCH_PROPERTIES"] = str(second_half)
    gunicorn = start_gunicorn(port, args.gunicorn_workers, str(static_root), "commit")
    try:
        results["POST booking, publish in request"] = run_wrk(base, booking_script, *wrk)
    finally:
        stop(gunicorn)
        shutil.rmtree(tmp, ignore_errors=True)
    booked = Booking.objects.count()
    posted = (
        results["POST booking"]["requests"]
        + results["POST booking, publish in request"]["requests"]
    )

    post, write = results["POST booking"], results["trivial DRF + INSERT"]
    availability = results["GET availability"]

    def over_write(run: dict[str, float]) -> float:
        return run["requests_per_s"] / write["requests_per_s"] if write["requests_per_s"] else 0.0

    ratios = {"POST booking": over_write(post), "GET availability": over_write(availability)}
    clean = all(r["non_2xx"] == 0 and r["socket_errors"] == 0 for r in results.values())
    ok = (
        ratios["POST booking"] >= TARGET_POST
        and ratios["GET availability"] >= TARGET_AVAILABILITY
        and clean
        and booked >= posted
    )
    print(
        f"\nAPI throughput: gunicorn {args.gunicorn_workers} workers (DEBUG off), "
        f"wrk -t{args.threads} -c{args.connections} -d{args.seconds}s on loopback"
    )
    print(
        f"{'':34}{'requests':>10}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>10}{'sock err':>10}"
    )
    for label, r in results.items():
        print(
            f"{label:34}{r['requests']:>10}{r['requests_per_s']:>10}{r['p50_ms']:>10}{r['p99_ms']:>10}{r['non_2xx']:>10}{r['socket_errors']:>10}"
        )
    print(f"bookings in the database: {booked} (POST requests: {posted})")
    for label, target in (("POST booking", TARGET_POST), ("GET availability", TARGET_AVAILABILITY)):
        print(
            f"ratio {label} / trivial DRF + one INSERT: {ratios[label]:.2f}   target: >= {target}"
            f"   {'OK' if ratios[label] >= target else 'MISSED'}"
        )
    path = write_result(
        "api",
        {
            "gunicorn_workers": args.gunicorn_workers,
            "wrk": {
                "threads": args.threads,
                "connections": args.connections,
                "seconds": args.seconds,
            },
            "results": results,
            "bookings_in_db": booked,
            "ratios_to_trivial_write": {label: round(r, 2) for label, r in ratios.items()},
            "targets": {"POST booking": TARGET_POST, "GET availability": TARGET_AVAILABILITY},
            "met": ok,
        },
    )
    print(f"written {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
