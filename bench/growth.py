"""Growth: do the periodic jobs and the availability query stay flat as bookings pile up?

Bookings are generated server-side (INSERT ... SELECT generate_series) for a
fixed set of properties (default 1,000), three days apart and non-overlapping per
property, ending two weeks ahead: growing the size only adds history, so the work
near "today" is the same at every size. Each booking comes with what the product
would have left behind: its cleaning task (done in the past, scheduled ahead,
one cleaner), its sent guest email, a scheduled reminder for future stays, one
DomainEvent and two done EventDeliveries.

Timed in-process (median of --repeat runs) and query-counted
(CaptureQueriesContext) at each size:
- reminder sweep: automation.services.outbound_messages_claim_due (50 messages due);
- cleaning run: automation.services.cleaning_runs_claim_due (claims reset each run);
- outbox relay pass: pms.pipeline.publishing.relay_due_deliveries with nothing due;
- availability: bookings.selectors.property_availability, one property, 30 nights.
Target (issue 9): time at the largest size < 2x the 10k time; equal query counts.

Run: make bench-growth (or ... bench/growth.py --sizes 10000,100000,1000000)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import bench_environment, django_setup, write_result

TARGET = 2.0
DUE_MESSAGES = 50

BOOKINGS_SQL = """
WITH props AS (
    SELECT id, tenant_id, (row_number() OVER (ORDER BY id) - 1) AS idx FROM pms_property
), guests AS (
    SELECT id, (row_number() OVER (ORDER BY id) - 1) AS idx FROM pms_guest
), spans AS (
    SELECT props.id AS property_id, props.tenant_id, guests.id AS guest_id, props.idx, j,
           %(end)s::date - 3 * (j + 1) - (props.idx %% 3)::int AS check_in
    FROM props JOIN guests USING (idx) CROSS JOIN generate_series(%(lo)s, %(hi)s - 1) AS j
)
INSERT INTO bookings_booking (
    reference, check_in, check_out, status, guests_count, total, currency, source,
    external_reference, cancellation_reason, created_at, updated_at, guest_id, property_id,
    tenant_id, accommodation_amount, cleaning_amount, tax_amount, price_lines, retained_amount)
SELECT 'G' || lpad(idx::text, 4, '0') || lpad(j::text, 7, '0'), check_in, check_in + 2,
       CASE WHEN check_in + 2 <= %(today)s THEN 'checked_out'
            WHEN check_in <= %(today)s THEN 'checked_in' ELSE 'confirmed' END,
       1, 230, 'EUR', 'direct', '', '', now(), now(), guest_id, property_id, tenant_id,
       200, 30, 0, '[]'::jsonb, 0
FROM spans
"""

FOLLOW_UP_SQL = (
    # Its cleaning task.
    """
    INSERT INTO automation_cleaningtask (
        scheduled_for, window_start, window_end, status, same_day_turnover, notes, started_at,
        done_at, created_at, updated_at, assignee_id, booking_id, property_id, tenant_id)
    SELECT b.check_out, b.check_out + time '11:00', b.check_out + time '15:00',
           CASE WHEN b.check_out < %(today)s THEN 'done' ELSE 'scheduled' END, false, '',
           NULL, NULL, now(), now(), %(cleaner)s, b.id, b.property_id, b.tenant_id
    FROM bookings_booking b WHERE b.id > %(after)s
    """,
    # Its sent booking email, and a scheduled reminder for future stays.
    """
    INSERT INTO automation_outboundmessage (
        idempotency_key, kind, channel, recipient, subject, body, status, send_after,
        attempts, last_error, created_at, sending_started_at, sent_at, booking_id,
        tenant_id, template_id)
    SELECT 'growth:' || b.id || ':access', 'guest_access', 'email', 'guest@example.com',
           'Your booking', 'Hello', 'sent', NULL::timestamptz, 1, '', now(),
           now()::timestamptz, now()::timestamptz, b.id, b.tenant_id, NULL::bigint
    FROM bookings_booking b WHERE b.id > %(after)s
    UNION ALL
    SELECT 'growth:' || b.id || ':reminder', 'reminder', 'email', 'guest@example.com',
           'See you soon', 'Hello', 'scheduled', b.check_in - interval '1 day', 0, '', now(),
           NULL::timestamptz, NULL::timestamptz, b.id, b.tenant_id, NULL::bigint
    FROM bookings_booking b WHERE b.id > %(after)s AND b.check_in >= %(today)s + 3
    """,
    # Its event and two done deliveries.
    """
    WITH ev AS (
        INSERT INTO pms_domainevent (
            id, aggregate_type, aggregate_id, sequence, event_type, payload, actor,
            created_at, tenant_id)
        SELECT gen_random_uuid(), 'booking', b.id::text, 1, 'booking.created', '{}'::jsonb,
               '', now(), b.tenant_id
        FROM bookings_booking b WHERE b.id > %(after)s
        RETURNING id, tenant_id
    )
    INSERT INTO pms_eventdelivery (
        handler, queue, status, publish_count, due_at, last_published_at, completed_at,
        created_at, event_id, tenant_id)
    SELECT h.handler, h.queue, 'done', 0, now(), NULL, now(), now(), ev.id, ev.tenant_id
    FROM ev CROSS JOIN (VALUES ('bookings.calendar', 'bookings'),
                               ('channelsync.outbound', 'channelsync')) AS h(handler, queue)
    """,
)

ANALYZE_SQL = (
    "ANALYZE bookings_booking, automation_cleaningtask, automation_outboundmessage, "
    "pms_domainevent, pms_eventdelivery"
)


def build(properties: int, tenants: int) -> int:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from pms.models import Guest, Property
    from tenants.models import Tenant

    call_command("flush", interactive=False, verbosity=0)
    owners = [Tenant.objects.create(name=f"T{t}", slug=f"t{t}") for t in range(tenants)]
    Property.objects.bulk_create(
        [
            Property(tenant=owners[i % tenants], name=f"P{i}", slug=f"p{i}", nightly_rate=100)
            for i in range(properties)
        ]
    )
    Guest.objects.bulk_create(
        [
            Guest(tenant=owners[i % tenants], name=f"G{i}", email=f"g{i}@example.com")
            for i in range(properties)
        ]
    )
    cleaner = get_user_model().objects.create_user("cleaner", "cleaner@example.com", "x")
    return int(cleaner.pk)


def grow(lo: int, hi: int, today: date, cleaner: int) -> float:
    """Add bookings number lo..hi-1 of every property (going back in time)."""
    from django.db import connection

    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(id), 0) FROM bookings_booking")
        after = cursor.fetchone()[0]
        params = {
            "lo": lo,
            "hi": hi,
            "today": today,
            "end": today + timedelta(days=15),
            "cleaner": cleaner,
            "after": after,
        }
        cursor.execute(BOOKINGS_SQL, params)
        for sql in FOLLOW_UP_SQL:
            cursor.execute(sql, params)
        cursor.execute(ANALYZE_SQL)
    return time.monotonic() - started


def add_due_messages(count: int) -> None:
    from automation.models import OutboundMessage
    from tenants.models import Tenant

    tenant = Tenant.objects.first()
    OutboundMessage.objects.bulk_create(
        [
            OutboundMessage(
                tenant=tenant,
                idempotency_key=f"growth-due-{i}",
                kind="bench_due",
                recipient="guest@example.com",
                subject="Due",
                body="Due",
                status="scheduled",
            )
            for i in range(count)
        ]
    )


def operations(now: datetime, today: date):  # type: ignore[no-untyped-def]
    from django.db import connection

    from automation.models import CleaningRun, OutboundMessage
    from automation.services import cleaning_runs_claim_due, outbound_messages_claim_due
    from bookings.selectors import property_availability
    from pms.models import Property
    from pms.pipeline.relay import relay_due_deliveries

    prop = Property.objects.order_by("pk").first()

    def reset_due() -> None:
        OutboundMessage.objects.filter(kind="bench_due").update(
            status="scheduled", send_after=now - timedelta(minutes=1)
        )

    def reset_runs() -> None:
        CleaningRun.objects.all().delete()
        OutboundMessage.objects.filter(idempotency_key__startswith="cleaning-list:").delete()
        connection.cursor().execute("ANALYZE automation_cleaningrun")

    def sweep() -> object:
        claimed = outbound_messages_claim_due(now=now)
        assert len(claimed) == DUE_MESSAGES, len(claimed)
        return claimed

    return {
        "reminder sweep": (reset_due, sweep),
        "cleaning run": (reset_runs, lambda: cleaning_runs_claim_due(now=now)),
        "outbox relay pass": (None, lambda: relay_due_deliveries()),
        "availability (1 property)": (
            None,
            lambda: property_availability(
                property=prop, start=today, end=today + timedelta(days=30)
            ),
        ),
    }


def measure(ops, repeat: int) -> dict[str, dict[str, float]]:  # type: ignore[no-untyped-def]
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    out = {}
    for name, (reset, func) in ops.items():
        times, queries = [], []
        for _ in range(repeat):
            if reset:
                reset()
            reset_queries()  # the query log keeps 9,000 entries; start each count empty
            with CaptureQueriesContext(connection) as ctx:
                started = time.perf_counter()
                result = func()
                times.append(time.perf_counter() - started)
            queries.append(len(ctx.captured_queries))
        out[name] = {
            "ms": round(statistics.median(times) * 1000, 2),
            "queries": max(queries),
            "result_size": len(result) if hasattr(result, "__len__") else result,
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="bookings, comma-separated")
    parser.add_argument("--properties", type=int, default=1000)
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if any(size % args.properties for size in sizes):
        parser.error("every size must be a multiple of --properties")

    bench_environment()
    django_setup()
    # No workers: what the jobs publish waits in the bench broker; start it empty.
    from bench.harness import flush_broker

    flush_broker()
    today = date.today()
    now = datetime.combine(today, datetime.min.time(), tzinfo=UTC) + timedelta(hours=12)
    cleaner = build(args.properties, args.tenants)
    add_due_messages(DUE_MESSAGES)
    ops = operations(now, today)
    results: dict[int, dict[str, object]] = {}
    done = 0
    for size in sizes:
        per_property = size // args.properties
        load_s = grow(done, per_property, today, cleaner)
        done = per_property
        results[size] = {"load_seconds": round(load_s, 1), "ops": measure(ops, args.repeat)}
        print(f"  {size:,} bookings loaded in {load_s:.1f} s, measured", flush=True)

    first, last = sizes[0], sizes[-1]
    print(f"\nGrowth: {args.properties} properties, median of {args.repeat} runs per figure")
    header = "".join(f"{f'{s:,} ms':>14}{'queries':>9}" for s in sizes)
    print(f"{'':28}{header}{'time ratio':>12}")
    ratios, all_ok = {}, True
    for name in ops:
        cells = ""
        for size in sizes:
            r = results[size]["ops"][name]  # type: ignore[index]
            cells += f"{r['ms']:>14}{r['queries']:>9}"
        a, b = results[first]["ops"][name], results[last]["ops"][name]  # type: ignore[index]
        ratio = b["ms"] / a["ms"] if a["ms"] else float("nan")
        flat = ratio < TARGET and a["queries"] == b["queries"]
        all_ok &= flat
        ratios[name] = {
            "time_ratio": round(ratio, 2),
            "equal_queries": a["queries"] == b["queries"],
        }
        print(f"{name:28}{cells}{ratio:>10.2f}  {'OK' if flat else 'MISSED'}")
    print(
        f"target: {first:,} -> {last:,} time ratio < {TARGET:g}x and equal query counts   "
        f"{'OK' if all_ok else 'MISSED'}"
    )
    path = write_result(
        "growth",
        {
            "properties": args.properties,
            "repeat": args.repeat,
            "sizes": {str(k): v for k, v in results.items()},
            "ratios": ratios,
            "target_ratio": TARGET,
            "met": all_ok,
        },
    )
    print(f"written {path}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
