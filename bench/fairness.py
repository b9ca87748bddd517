"""Fairness between tenants: does tenant A's flood of channel syncs slow tenant B down?

Real workers grouped as in the Procfile (operational, payments, sync), real
PostgreSQL and Redis, a loopback iCal server. Tenant A asks for 5,000 channel
syncs (what "sync now" on 5,000 selected channels does) while tenant B makes
bookings and asks for one sync of its own channel. Printed, with and without
the flood:
- B's booking confirmation latency: commit of the booking -> its calendar
  delivery applied (both PostgreSQL timestamps);
- B's channel-sync latency: B's request -> B's channel synced.
Target (issue 7): B's p95 under flood within 2x its p95 alone.

Run: make bench-fairness (or .venv/bin/python -m devstack exec -- .venv/bin/python bench/fairness.py)
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import (
    StaticFeedServer,
    bench_environment,
    django_setup,
    flush_broker,
    ical_channels,
    summary,
    workers,
    write_result,
)

WORKER_GROUPS = {  # as the Procfile's defaults
    "operational": ("bookings,accounting,default", 2, 0),
    "messaging": ("messaging", 16, 0, "threads"),
    "payments": ("payments,fallback", 1, 0),
    # The background group, niced: imports (bulk) run here.
    "automation": ("automation,messaging_batch,bulk", 4, 10),
    "sync": ("channelsync", 2, 0),
    "outbound": ("outbound", 6, 0),
}


def build(feed_url: str, flood: int):  # type: ignore[no-untyped-def]
    from django.core.management import call_command

    from pms.models import Guest, Property
    from tenants.models import Tenant

    call_command("flush", interactive=False, verbosity=0)
    tenant_a = Tenant.objects.create(name="Flooder", slug="flooder")
    tenant_b = Tenant.objects.create(name="Bystander", slug="bystander")
    prop_a = Property.objects.create(tenant=tenant_a, name="A", slug="a", nightly_rate=100)
    prop_b = Property.objects.create(
        tenant=tenant_b, name="B", slug="b", nightly_rate=100, max_guests=4
    )
    guest_b = Guest.objects.create(tenant=tenant_b, name="Guest B", email="")
    # Inside the booking horizon (BOOKING_HORIZON_DAYS, 730): both phases fit before it.
    far = date.today() + timedelta(days=30)
    ical_channels(tenant_a, prop_a, feed_url, flood, prefix="a")
    (channel_b,) = ical_channels(tenant_b, prop_b, feed_url, 1, prefix="b")
    return tenant_a, tenant_b, prop_b, guest_b, channel_b, far


def measure_b(tenant_b, prop_b, guest_b, channel_b, start: date, count: int):  # type: ignore[no-untyped-def]
    from bookings.services import booking_create
    from channelsync.models import Channel
    from channelsync.services import channel_sync_request
    from pms.models import EventDelivery

    bookings = []
    sync_requested = time.time()
    channel_sync_request(channel=channel_b)
    for i in range(count):
        booking = booking_create(
            tenant=tenant_b,
            property=prop_b,
            guest=guest_b,
            check_in=start + timedelta(days=2 * i),
            check_out=start + timedelta(days=2 * i + 1),
        )
        bookings.append(booking)
        time.sleep(0.05)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        done = EventDelivery.objects.filter(
            handler="bookings.calendar",
            status="done",
            event__aggregate_id__in=[str(b.pk) for b in bookings],
        ).count()
        if done == count:
            break
        time.sleep(0.2)
    latencies = [
        (d.completed_at - d.event.created_at).total_seconds()
        for d in EventDelivery.objects.filter(
            handler="bookings.calendar", event__aggregate_id__in=[str(b.pk) for b in bookings]
        ).select_related("event")
        if d.completed_at
    ]
    while time.monotonic() < deadline:
        synced = Channel.objects.get(pk=channel_b.pk).last_success_at
        if synced and synced.timestamp() >= sync_requested:
            break
        time.sleep(0.2)
    sync_latency = (synced.timestamp() - sync_requested) if synced else float("nan")
    return latencies, sync_latency


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flood", type=int, default=5000, help="tenant A's channel syncs")
    parser.add_argument("--bookings", type=int, default=60, help="tenant B's bookings per phase")
    args = parser.parse_args()

    bench_environment()
    django_setup()
    flush_broker()
    from channelsync.models import Channel
    from channelsync.services import channel_sync_request

    with StaticFeedServer() as feed, workers(WORKER_GROUPS):
        tenant_a, tenant_b, prop_b, guest_b, channel_b, far = build(feed.url, args.flood)
        alone, sync_alone = measure_b(tenant_b, prop_b, guest_b, channel_b, far, args.bookings)

        flood_started = time.time()
        channels_a = list(Channel.objects.filter(tenant=tenant_a))
        flooder = threading.Thread(
            target=lambda: [channel_sync_request(channel=c) for c in channels_a], daemon=True
        )
        flooder.start()
        time.sleep(1.0)  # the flood is under way
        flooded, sync_flooded = measure_b(
            tenant_b, prop_b, guest_b, channel_b, far + timedelta(days=300), args.bookings
        )
        flooder.join()
        a_synced = Channel.objects.filter(
            tenant=tenant_a, last_success_at__gte=_aware(flood_started)
        ).count()

    alone_s, flooded_s = summary(alone), summary(flooded)
    ratio = flooded_s["p95_ms"] / alone_s["p95_ms"] if alone_s["p95_ms"] else float("nan")
    print(
        f"\nFairness: tenant A floods {args.flood} channel syncs; tenant B books {args.bookings} stays"
    )
    print(f"{'':28}{'median ms':>12}{'p95 ms':>12}{'max ms':>12}")
    print(
        f"{'B confirmation, alone':28}{alone_s['median_ms']:>12}{alone_s['p95_ms']:>12}{alone_s['max_ms']:>12}"
    )
    print(
        f"{'B confirmation, A flooding':28}{flooded_s['median_ms']:>12}{flooded_s['p95_ms']:>12}{flooded_s['max_ms']:>12}"
    )
    print(
        f"p95 ratio (flood / alone): {ratio:.2f}   target: <= 2.00   {'OK' if ratio <= 2 else 'MISSED'}"
    )
    print(
        f"B channel sync: {sync_alone * 1000:.0f} ms alone, {sync_flooded * 1000:.0f} ms under flood"
    )
    print(f"A's channels synced by the end of B's phase: {a_synced} of {args.flood}")
    path = write_result(
        "fairness",
        {
            "flood": args.flood,
            "bookings": args.bookings,
            "alone": alone_s,
            "flooded": flooded_s,
            "p95_ratio": round(ratio, 2),
            "b_sync_alone_ms": round(sync_alone * 1000),
            "b_sync_flooded_ms": round(sync_flooded * 1000),
            "a_synced_during": a_synced,
        },
    )
    print(f"written {path}")
    return 0 if ratio <= 2 else 1


def _aware(timestamp: float):  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime.fromtimestamp(timestamp, tz=UTC)


if __name__ == "__main__":
    sys.exit(main())
