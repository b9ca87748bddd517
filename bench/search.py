"""Booking-engine search latency: 200 properties for a 7-night stay vs one availability call.

One gunicorn as in bench/api.py (production settings, DEBUG off, 2 sync workers) on
127.0.0.1 over the bench database: one tenant with 200 properties, each with pricing
rules (a season over part of the window with a weekend rate, a property weekend
rate, an extra-guest fee, a weekly discount, a rate override, a percentage and a
city tax); 20 of them are blocked in the window, so the search lists 180. A single
client sends real HTTP requests one at a time (``wrk`` is not needed), alternating

- ``GET /api/v1/tenants/bench/properties/?check_in&check_out&guests=3`` (the first
  page: 20 properties, each with its quote and lines), and
- ``GET /api/v1/properties/<uuid>/availability/?start&end`` for the same 7 nights
  (rotating over the properties),

so both see the same machine state. Also measured, not targeted: the search with
``page_size=100``. Printed: median and p95 of each, and the ratio search / availability.
Target (issue 16): search median and p95 <= 2x availability's.

Run: make bench-search (or .venv/bin/python -m devstack exec -- .venv/bin/python bench/search.py)
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import sys
import tempfile
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.api import start_gunicorn, stop
from bench.harness import bench_environment, django_setup, flush_broker, summary, write_result
from testkit.processes import free_port

TARGET = 2.0
PROPERTIES = 200
BLOCKED = 20


def build(check_in: date, check_out: date) -> list[str]:
    """The bench tenant's 200 priced properties; their public ids."""
    from django.core.management import call_command

    from bookings.choices import TaxKind
    from bookings.models import Block, PropertyTax, RateOverride, Season
    from pms.models import Property
    from tenants.models import Tenant

    call_command("flush", interactive=False, verbosity=0)
    tenant = Tenant.objects.create(name="Bench", slug="bench")
    props = Property.objects.bulk_create(
        [
            Property(
                tenant=tenant,
                name=f"Property {i:03}",
                slug=f"p{i}",
                nightly_rate=Decimal(100 + i),
                weekend_rate=Decimal(130 + i),
                cleaning_fee=Decimal("40"),
                max_guests=6,
                base_occupancy=2,
                extra_guest_fee=Decimal("15"),
                weekly_discount_percent=Decimal("10"),
                monthly_discount_percent=Decimal("20"),
            )
            for i in range(PROPERTIES)
        ]
    )
    Season.objects.bulk_create(
        [
            Season(
                tenant=tenant,
                property=p,
                name="Summer",
                start=check_in + timedelta(days=3),
                end=check_in + timedelta(days=60),
                nightly_rate=Decimal("180"),
                weekend_rate=Decimal("220"),
                min_nights=2,
            )
            for p in props
        ]
    )
    RateOverride.objects.bulk_create(
        [
            RateOverride(tenant=tenant, property=p, date=check_in, nightly_rate=Decimal("90"))
            for p in props
        ]
    )
    PropertyTax.objects.bulk_create(
        [
            tax
            for p in props
            for tax in (
                PropertyTax(tenant=tenant, property=p, name="VAT", rate=Decimal("6")),
                PropertyTax(
                    tenant=tenant,
                    property=p,
                    name="City tax",
                    kind=TaxKind.PER_GUEST_NIGHT,
                    rate=Decimal("2"),
                ),
            )
        ]
    )
    Block.objects.bulk_create(
        [
            Block(tenant=tenant, property=p, start=check_in + timedelta(days=2), end=check_out)
            for p in props[:BLOCKED]
        ]
    )
    return [str(p.public_id) for p in props]


def timed_get(port: int, path: str) -> tuple[float, dict[str, Any]]:
    """One request on a new connection (gunicorn's sync workers close it after each)."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers={"Accept": "application/json"})
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    elapsed = time.perf_counter() - started
    if response.status != 200:
        raise RuntimeError(f"GET {path}: {response.status} {body[:300]!r}")
    return elapsed, json.loads(body)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300, help="requests of each kind")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--gunicorn-workers", type=int, default=2)
    args = parser.parse_args()

    bench_environment()
    django_setup()
    flush_broker()
    check_in = date.today() + timedelta(days=30)
    check_out = check_in + timedelta(days=7)
    public_ids = build(check_in, check_out)
    window = f"check_in={check_in}&check_out={check_out}&guests=3"
    search_path = f"/api/v1/tenants/bench/properties/?{window}"
    wide_path = f"{search_path}&page_size=100"

    def availability_path(i: int) -> str:
        prop = public_ids[i % len(public_ids)]
        return f"/api/v1/properties/{prop}/availability/?start={check_in}&end={check_out}"

    tmp = Path(tempfile.mkdtemp(prefix="bench-search-"))
    (tmp / "static").mkdir()
    port = free_port()
    gunicorn = start_gunicorn(port, args.gunicorn_workers, str(tmp / "static"))
    timings: dict[str, list[float]] = {"search": [], "availability": [], "search_100": []}
    try:
        for i in range(args.warmup):
            timed_get(port, search_path)
            timed_get(port, availability_path(i))
            timed_get(port, wide_path)
        _, first = timed_get(port, search_path)
        listed, page = first["count"], first["results"]
        for i in range(args.rounds):
            timings["search"].append(timed_get(port, search_path)[0])
            timings["availability"].append(timed_get(port, availability_path(i))[0])
            timings["search_100"].append(timed_get(port, wide_path)[0])
    finally:
        stop(gunicorn)
        shutil.rmtree(tmp, ignore_errors=True)

    results = {name: summary(values) for name, values in timings.items()}
    search, availability = results["search"], results["availability"]
    ratio_median = search["median_ms"] / availability["median_ms"]
    ratio_p95 = search["p95_ms"] / availability["p95_ms"]
    wide_ratio = results["search_100"]["median_ms"] / availability["median_ms"]
    consistent = listed == PROPERTIES - BLOCKED and all(
        Decimal(item["quote"]["total"])
        == sum(Decimal(line["amount"]) for line in item["quote"]["lines"])
        for item in page
    )
    ok = ratio_median <= TARGET and ratio_p95 <= TARGET and consistent
    print(
        f"\nSearch vs availability: {PROPERTIES} properties ({listed} can take the stay), "
        f"7 nights, gunicorn {args.gunicorn_workers} workers (DEBUG off), "
        f"{args.rounds} sequential requests of each"
    )
    print(f"{'':34}{'median ms':>12}{'p95 ms':>10}{'max ms':>10}")
    labels = {
        "search": "search, first page (20 quotes)",
        "availability": "availability, one property",
        "search_100": "search, page_size=100",
    }
    for name, label in labels.items():
        r = results[name]
        print(f"{label:34}{r['median_ms']:>12}{r['p95_ms']:>10}{r['max_ms']:>10}")
    print(f"(for scale: search page_size=100 / availability, median: {wide_ratio:.2f})")
    print(
        f"ratio search / availability: median {ratio_median:.2f}, p95 {ratio_p95:.2f}   "
        f"target: <= {TARGET}   {'OK' if ok else 'MISSED'}"
    )
    path = write_result(
        "search",
        {
            "properties": PROPERTIES,
            "listed": listed,
            "nights": 7,
            "gunicorn_workers": args.gunicorn_workers,
            "rounds": args.rounds,
            "results": results,
            "ratio_median": round(ratio_median, 2),
            "ratio_p95": round(ratio_p95, 2),
            "ratio_median_page_size_100": round(wide_ratio, 2),
            "quotes_consistent": consistent,
            "target": TARGET,
            "met": ok,
        },
    )
    print(f"written {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
