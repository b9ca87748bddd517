"""The manager's dashboard and the calendar of all homes: 10 homes vs 200, 100k bookings.

Two tenants in one bench database: "Small" with 10 properties and "Large" with 200,
holding 100,000 bookings between them, built server-side as in bench/growth.py
(INSERT ... SELECT generate_series): every property has a two-night stay every three
days from about three years back to a year ahead, so most bookings are far from the
window but every day has arrivals, departures and cleaning. With them, set-based:
a cleaning task per booking (some future ones unassigned, some same-day turnovers),
a payment per booking (pending for part of the future ones, some asked weeks ago), a
guest message per booking answered by the host (except a few recent ones), requests
to book in the next two weeks, some cancelled stays, a block in a free night of each
home in the window, a channel per home (some in error) and, on every tenth home, a
channel block over a stay with its open conflict, and urgent maintenance on a few.

One manager per tenant (Role.MANAGER) logs in through the admin login form
(requests.Session: CSRF cookie, then the form). One gunicorn as in bench/api.py
(production settings, DEBUG off, 2 sync workers) serves the static files collected
for the run. A single client sends real HTTP requests one at a time, interleaved:

- ``GET /admin/`` (the dashboard's panels) as the 10-home and the 200-home manager;
- ``GET /admin/bookings/booking/calendar/?start=<today>&days=21`` as each (10 homes,
  and the first page of 100 of the 200).

Printed: median and p95 of each, the ratios 200-home / 10-home for each page, and the
SQL queries of each page, counted once in-process (test Client, CaptureQueriesContext).
``--profile`` prints a cProfile of each page in-process (the 200-home manager's).
Target (issue 17): ratio <= 2 for each page, median and p95.

Run: make bench-dashboard (or .venv/bin/python -m devstack exec -- .venv/bin/python
bench/dashboard.py)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.api import start_gunicorn, stop
from bench.harness import bench_environment, django_setup, flush_broker, summary, write_result
from testkit.processes import free_port

TARGET = 2.0
BOOKINGS = 100_000
WORLDS = {"small": 10, "large": 200}  # tenant slug: properties
PASSWORD = "bench-dashboard-password"
CALENDAR_DAYS = 21

# Every property's stays, three days apart (two nights, one free night), the last a
# year ahead; the first BOOKINGS of (j, property) so they spread evenly over homes.
BOOKINGS_SQL = """
WITH props AS (
    SELECT id, tenant_id, (row_number() OVER (ORDER BY id) - 1) AS idx FROM pms_property
), guests AS (
    SELECT id, (row_number() OVER (ORDER BY id) - 1) AS idx FROM pms_guest
), spans AS (
    SELECT props.id AS property_id, props.tenant_id, guests.id AS guest_id, props.idx, j,
           %(end)s::date - 3 * (j + 1) - (props.idx %% 3)::int AS check_in
    FROM props JOIN guests USING (idx) CROSS JOIN generate_series(0, %(per)s - 1) AS j
    ORDER BY j, props.idx
    LIMIT %(total)s
)
INSERT INTO bookings_booking (
    reference, check_in, check_out, status, guests_count, total, currency, source,
    external_reference, cancellation_reason, cancellation_fee, retained_amount, price_lines,
    created_at, updated_at, guest_id, property_id, tenant_id, accommodation_amount,
    cleaning_amount, tax_amount)
SELECT 'D' || lpad(idx::text, 4, '0') || lpad(j::text, 7, '0'), check_in, check_in + 2,
       CASE WHEN check_in + 2 <= %(today)s AND (idx + j) %% 25 = 0 THEN 'cancelled'
            WHEN check_in + 2 <= %(today)s THEN 'checked_out'
            WHEN check_in <= %(today)s THEN 'checked_in'
            WHEN check_in <= %(today)s + 14 AND (idx + j) %% 10 = 0 THEN 'requested'
            ELSE 'confirmed' END,
       1 + (j %% 4), 230, 'EUR', CASE WHEN j %% 3 = 0 THEN 'airbnb' ELSE 'direct' END,
       '', '', 0, 0, '[]'::jsonb,
       CASE WHEN check_in > %(today)s AND check_in <= %(today)s + 14 AND (idx + j) %% 10 = 0
            THEN now() - interval '3 hours'
            ELSE least(now(), check_in - interval '40 days') END,
       now(), guest_id, property_id, tenant_id, 200, 30, 0
FROM spans
"""

FOLLOW_UP_SQL = (
    # Its cleaning task: done in the past; ahead, one in six unassigned.
    """
    INSERT INTO automation_cleaningtask (
        scheduled_for, window_start, window_end, status, same_day_turnover, started_at,
        done_at, notes, created_at, updated_at, assignee_id, booking_id, property_id, tenant_id)
    SELECT b.check_out, b.check_out + time '11:00', b.check_out + time '15:00',
           CASE WHEN b.status = 'cancelled' THEN 'cancelled'
                WHEN b.check_out < %(today)s THEN 'done' ELSE 'scheduled' END,
           b.id %% 5 = 0, NULL, NULL, '', now(), now(),
           CASE WHEN b.check_out >= %(today)s AND b.id %% 6 = 0 THEN NULL
                ELSE %(cleaner)s END,
           b.id, b.property_id, b.tenant_id
    FROM bookings_booking b
    """,
    # Its payment: received, except a third of the stays ahead (asked 0 to 19 days ago).
    """
    INSERT INTO bookings_payment (
        amount, currency, method, provider, provider_reference, status, created_at,
        received_at, booking_id, tenant_id)
    SELECT b.total, 'EUR', 'bank_transfer', 'manual', '',
           CASE WHEN b.check_in > %(today)s AND b.id %% 3 = 0 THEN 'pending' ELSE 'received' END,
           CASE WHEN b.check_in > %(today)s AND b.id %% 3 = 0
                THEN now() - (b.id %% 20) * interval '1 day' ELSE b.created_at END,
           CASE WHEN b.check_in > %(today)s AND b.id %% 3 = 0 THEN NULL ELSE b.created_at END,
           b.id, b.tenant_id
    FROM bookings_booking b WHERE b.status <> 'cancelled'
    """,
    # A question from the guest on every booking, and the host's answer an hour later,
    # except on one in nine of the stays of the next month.
    """
    INSERT INTO bookings_guestmessage (sender, author, body, created_at, booking_id, tenant_id)
    SELECT 'guest', '', 'Is there parking near the house?',
           least(now() - interval '2 hours', b.check_in - interval '10 days'), b.id, b.tenant_id
    FROM bookings_booking b
    UNION ALL
    SELECT 'host', 'manager', 'Yes, in the street.',
           least(now() - interval '2 hours', b.check_in - interval '10 days') + interval '1 hour',
           b.id, b.tenant_id
    FROM bookings_booking b
    WHERE NOT (b.check_in >= %(today)s AND b.check_in < %(today)s + 30 AND b.id %% 9 = 0)
    """,
    # What guest_message_post stores beside those: the unanswered threads' wait.
    """
    UPDATE bookings_booking b
    SET awaiting_reply_since = least(now() - interval '2 hours', b.check_in - interval '10 days')
    WHERE b.check_in >= %(today)s AND b.check_in < %(today)s + 30 AND b.id %% 9 = 0
    """,
    # A block on the free night after the stay that starts 5 to 7 days ahead.
    """
    INSERT INTO bookings_block (
        start, "end", label, source, external_uid, is_active, created_at, updated_at,
        property_id, tenant_id)
    SELECT b.check_out, b.check_out + 1, 'Owner visit', 'manual', '', true, now(), now(),
           b.property_id, b.tenant_id
    FROM bookings_booking b
    WHERE b.check_in BETWEEN %(today)s + 5 AND %(today)s + 7
    """,
)

CONFLICTS_SQL = (
    # On every tenth home, the channel's block over the stay that starts 8 to 10 days ahead...
    """
    INSERT INTO bookings_block (
        start, "end", label, source, external_uid, is_active, created_at, updated_at,
        property_id, tenant_id)
    SELECT b.check_in, b.check_out, 'Reserved', 'channel', 'bench-' || b.id, true, now(),
           now(), b.property_id, b.tenant_id
    FROM bookings_booking b JOIN channelsync_channel c ON c.property_id = b.property_id
    WHERE b.check_in BETWEEN %(today)s + 8 AND %(today)s + 10 AND c.id %% 10 = 0
    """,
    # ... and its open conflict.
    """
    INSERT INTO channelsync_conflict (
        start, "end", status, detected_at, alerted_at, resolved_at, resolution_note,
        block_id, booking_id, channel_id, other_block_id, property_id, resolved_by_id,
        tenant_id)
    SELECT k.start, k."end", 'open', now(), NULL, NULL, '', k.id, b.id, c.id, NULL,
           k.property_id, NULL, k.tenant_id
    FROM bookings_block k
    JOIN bookings_booking b ON b.property_id = k.property_id AND b.check_in = k.start
    JOIN channelsync_channel c ON c.property_id = k.property_id
    WHERE k.source = 'channel'
    """,
)

ANALYZE_SQL = (
    "ANALYZE bookings_booking, automation_cleaningtask, bookings_payment, "
    "bookings_guestmessage, bookings_block, channelsync_channel, channelsync_conflict"
)


def build(today: date) -> dict[str, Any]:
    """The two tenants, their homes, guests, channels, managers and 100k bookings."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from automation.choices import MaintenancePriority, ReportedBy
    from automation.models import MaintenanceRequest
    from channelsync.choices import ChannelStatus
    from channelsync.models import Channel
    from pms.models import Guest, Property
    from tenants.choices import Role
    from tenants.models import Tenant
    from tenants.services import membership_grant

    call_command("flush", interactive=False, verbosity=0)
    started = time.monotonic()
    users = get_user_model().objects
    cleaner = users.create_user("cleaner", "cleaner@example.com", PASSWORD)
    managers: dict[str, Any] = {}
    for slug, count in WORLDS.items():
        tenant = Tenant.objects.create(name=slug.title(), slug=slug)
        props = Property.objects.bulk_create(
            [
                Property(tenant=tenant, name=f"{slug} home {i:03}", slug=f"h{i}", nightly_rate=100)
                for i in range(count)
            ]
        )
        Guest.objects.bulk_create(
            [
                Guest(tenant=tenant, name=f"Guest {slug} {i}", email=f"g{i}@{slug}.example")
                for i in range(count)
            ]
        )
        Channel.objects.bulk_create(
            [
                Channel(
                    tenant=tenant,
                    property=p,
                    name=f"{p.name} Airbnb",
                    kind="ical",
                    import_url="http://127.0.0.1:9/feed.ics",
                    poll_interval=timedelta(hours=1),
                    status=ChannelStatus.ERROR if i % 20 == 0 else ChannelStatus.OK,
                    consecutive_failures=3 if i % 20 == 0 else 0,
                )
                for i, p in enumerate(props)
            ]
        )
        MaintenanceRequest.objects.bulk_create(
            [
                MaintenanceRequest(
                    tenant=tenant,
                    property=p,
                    title="Boiler leaking",
                    reported_by=ReportedBy.STAFF,
                    priority=MaintenancePriority.URGENT if i % 2 else MaintenancePriority.HIGH,
                )
                for i, p in enumerate(props[::5])
            ]
        )
        manager = users.create_user(f"manager-{slug}", f"manager@{slug}.example", PASSWORD)
        membership_grant(user=manager, tenant=tenant, role=Role.MANAGER)
        membership_grant(user=cleaner, tenant=tenant, role=Role.CLEANER)
        managers[slug] = manager
    properties = sum(WORLDS.values())
    params = {
        "today": today,
        "end": today + timedelta(days=366),
        "per": -(-BOOKINGS // properties),
        "total": BOOKINGS,
        "cleaner": cleaner.pk,
    }
    with connection.cursor() as cursor:
        for sql in (BOOKINGS_SQL, *FOLLOW_UP_SQL, *CONFLICTS_SQL):
            cursor.execute(sql, params)
        cursor.execute(ANALYZE_SQL)
        cursor.execute(
            "SELECT t.slug, count(*) FROM bookings_booking b JOIN tenants_tenant t "
            "ON t.id = b.tenant_id GROUP BY t.slug"
        )
        per_tenant = dict(cursor.fetchall())
    return {
        "managers": managers,
        "bookings": per_tenant,
        "load_seconds": round(time.monotonic() - started, 1),
    }


def login(port: int, username: str) -> Any:
    """A requests.Session logged in through the admin login form."""
    import requests

    base = f"http://127.0.0.1:{port}"
    session = requests.Session()
    page = session.get(f"{base}/admin/login/", timeout=30)
    page.raise_for_status()
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    if not match:
        raise RuntimeError("no CSRF token on the admin login page")
    answer = session.post(
        f"{base}/admin/login/?next=/admin/",
        data={
            "csrfmiddlewaretoken": match.group(1),
            "username": username,
            "password": PASSWORD,
            "next": "/admin/",
        },
        headers={"Referer": f"{base}/admin/login/"},
        timeout=30,
        allow_redirects=False,
    )
    if answer.status_code != 302 or "sessionid" not in session.cookies:
        raise RuntimeError(f"login of {username}: {answer.status_code} {answer.text[:300]!r}")
    return session


def timed_get(session: Any, url: str) -> tuple[float, str]:
    started = time.perf_counter()
    response = session.get(url, timeout=60, allow_redirects=False)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"GET {url}: {response.status_code} {response.text[:300]!r}")
    return elapsed, response.text


def query_counts(managers: dict[str, Any], paths: dict[str, str]) -> dict[str, int]:
    """Each page's SQL queries, in-process (the test Client, logged in, once warm)."""
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    counts = {}
    for slug, manager in managers.items():
        client = Client()
        client.force_login(manager)
        for page, path in paths.items():
            client.get(path, secure=True)  # warm: the first request loads caches
            reset_queries()
            with CaptureQueriesContext(connection) as ctx:
                response = client.get(path, secure=True)
            assert response.status_code == 200, (path, response.status_code)
            counts[f"{page}_{slug}"] = len(ctx.captured_queries)
    return counts


def profile(managers: dict[str, Any], paths: dict[str, str], slug: str) -> None:
    import cProfile
    import pstats

    from django.test import Client

    client = Client()
    client.force_login(managers[slug])
    for page, path in paths.items():
        client.get(path, secure=True)
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(5):
            client.get(path, secure=True)
        profiler.disable()
        print(f"\n--- cProfile: {page}, {slug} manager, 5 requests in-process ---")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)


def page_facts(html: str) -> dict[str, int]:
    """What a page showed: the dashboard's panels, the calendar's rows (a sanity check)."""
    return {
        "bytes": len(html),
        "panels": html.count('<article class="pms-panel'),
        "calendar_rows": html.count('role="row" id="home-'),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100, help="requests of each kind")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--gunicorn-workers", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="cProfile each page in-process")
    args = parser.parse_args()

    bench_environment()
    tmp = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    static_root = tmp / "static"
    static_root.mkdir()
    # The admin pages need the static files' manifest (production storage): this process
    # and gunicorn both use bench.settings_bench, which reads STATIC_ROOT from here.
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings_bench"
    os.environ["BENCH_STATIC_ROOT"] = str(static_root)
    django_setup()
    flush_broker()
    from django.core.management import call_command
    from django.utils import timezone

    call_command("collectstatic", interactive=False, verbosity=0)
    today = timezone.localdate()
    world = build(today)
    print(
        f"  {sum(world['bookings'].values()):,} bookings {world['bookings']} "
        f"built in {world['load_seconds']} s",
        flush=True,
    )
    paths = {
        "dashboard": "/admin/",
        "calendar": f"/admin/bookings/booking/calendar/?start={today}&days={CALENDAR_DAYS}",
    }
    queries = query_counts(world["managers"], paths)
    if args.profile:
        profile(world["managers"], paths, "large")

    port = free_port()
    gunicorn = start_gunicorn(port, args.gunicorn_workers, str(static_root))
    base = f"http://127.0.0.1:{port}"
    kinds = [(page, slug) for page in paths for slug in WORLDS]
    timings: dict[str, list[float]] = {f"{page}_{slug}": [] for page, slug in kinds}
    facts: dict[str, dict[str, int]] = {}
    try:
        sessions = {slug: login(port, f"manager-{slug}") for slug in WORLDS}
        for _ in range(args.warmup):
            for page, slug in kinds:
                _, html = timed_get(sessions[slug], base + paths[page])
                facts[f"{page}_{slug}"] = page_facts(html)
        for _ in range(args.rounds):
            for page, slug in kinds:
                timings[f"{page}_{slug}"].append(timed_get(sessions[slug], base + paths[page])[0])
    finally:
        stop(gunicorn)
        shutil.rmtree(tmp, ignore_errors=True)

    results = {name: summary(values) for name, values in timings.items()}
    ratios = {
        page: {
            "median": round(
                results[f"{page}_large"]["median_ms"] / results[f"{page}_small"]["median_ms"], 2
            ),
            "p95": round(
                results[f"{page}_large"]["p95_ms"] / results[f"{page}_small"]["p95_ms"], 2
            ),
        }
        for page in paths
    }
    ok = all(r <= TARGET for ratio in ratios.values() for r in ratio.values())
    print(
        f"\nDashboard and calendar: 10 vs 200 homes, {BOOKINGS:,} bookings, gunicorn "
        f"{args.gunicorn_workers} workers (DEBUG off), {args.rounds} sequential requests of each"
    )
    print(
        f"{'':30}{'median ms':>11}{'p95 ms':>9}{'max ms':>9}{'queries':>9}{'KiB':>7}{'panels':>8}{'rows':>6}"
    )
    labels = {
        "dashboard_small": "dashboard, 10 homes",
        "dashboard_large": "dashboard, 200 homes",
        "calendar_small": f"calendar {CALENDAR_DAYS} d, 10 homes",
        "calendar_large": f"calendar {CALENDAR_DAYS} d, 100 of 200 homes",
    }
    for name, label in labels.items():
        r = results[name]
        print(
            f"{label:30}{r['median_ms']:>11}{r['p95_ms']:>9}{r['max_ms']:>9}"
            f"{queries[name]:>9}{facts[name]['bytes'] // 1024:>7}"
            f"{facts[name]['panels']:>8}{facts[name]['calendar_rows']:>6}"
        )
    for page, ratio in ratios.items():
        print(
            f"ratio {page} 200 / 10 homes: median {ratio['median']:.2f}, p95 {ratio['p95']:.2f}"
            f"   target: <= {TARGET:g}   "
            f"{'OK' if max(ratio.values()) <= TARGET else 'MISSED'}"
        )
    print(f"queries per page (in-process, test Client): {queries}")
    path = write_result(
        "dashboard",
        {
            "bookings": world["bookings"],
            "properties": WORLDS,
            "calendar_days": CALENDAR_DAYS,
            "gunicorn_workers": args.gunicorn_workers,
            "rounds": args.rounds,
            "load_seconds": world["load_seconds"],
            "results": results,
            "queries": queries,
            "pages": facts,
            "ratios": ratios,
            "target": TARGET,
            "met": ok,
        },
    )
    print(f"written {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
