"""Scale-out: two independent worker "hosts" on one broker and one database share the work.

Host A consumes the operational queues, host B payments, automation and sync work;
both consume ``bookings``. 120 bookings later, both hosts' logs show handled
calendar deliveries, every delivery is applied exactly once, and every booking has
exactly one calendar entry.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta

import pytest
from django.db.models import Count

from bookings.models import CalendarEntry, LedgerEntry
from bookings.services import booking_create
from config.celery import app as celery_app
from pms.models import EventDelivery
from testkit.processes import wait_until
from tests.factories import PropertyFactory
from tests.support.pipeline import assert_pipeline_settled
from tests.support.servers import CeleryWorker, start_workers, stop_workers

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

HOST_QUEUES = {
    "host-a": ["bookings", "messaging", "accounting", "default"],
    "host-b": [
        "bookings",
        "payments",
        "fallback",
        "automation",
        "messaging_batch",
        "channelsync",
        "bulk",
        "outbound",
    ],
}
# "Task handlers.bookings.calendar[<task id>] succeeded in 0.01s: 'applied'"
APPLIED = re.compile(
    r"Task (handlers\.[\w.]+)\[([0-9a-f-]{36})\] succeeded in [\d.e-]+s: 'applied'"
)


def _applied(worker: CeleryWorker) -> Counter[tuple[str, str]]:
    text = worker.logfile.read_text(errors="replace")
    return Counter(APPLIED.findall(text))


@pytest.fixture
def two_hosts(worker_env):
    hosts = [
        CeleryWorker(queues=queues, env=worker_env, concurrency=1, name=name)
        for name, queues in HOST_QUEUES.items()
    ]
    try:
        start_workers(hosts, celery_app)
        yield hosts
    finally:
        stop_workers(hosts)


def test_two_hosts_share_the_work_and_no_delivery_is_applied_twice(two_hosts, alice, future):
    properties = [PropertyFactory.create(tenant=alice.tenant) for _ in range(20)]
    bookings = [
        booking_create(
            tenant=alice.tenant,
            property=properties[i % 20],
            guest=alice.guest,
            check_in=future + timedelta(days=2 * (i // 20)),
            check_out=future + timedelta(days=2 * (i // 20) + 1),
        )
        for i in range(120)
    ]

    # Without the relay first: every delivery arrives through its one post-commit
    # publish, so each log line below is a first delivery (the tests' 3 s deadline
    # would otherwise have the relay re-send whatever is still queued).
    wait_until(
        lambda: not EventDelivery.objects.filter(status="pending").exists(),
        240,
        interval=0.5,
        what="every delivery applied",
    )
    report = assert_pipeline_settled(timeout=60)
    assert report.applied == report.deliveries and report.failed_for_review == 0

    host_a, host_b = two_hosts
    applied_a, applied_b = _applied(host_a), _applied(host_b)
    calendar_a = sum(
        n for (task, _), n in applied_a.items() if task == "handlers.bookings.calendar"
    )
    calendar_b = sum(
        n for (task, _), n in applied_b.items() if task == "handlers.bookings.calendar"
    )
    assert calendar_a > 0 and calendar_b > 0, (calendar_a, calendar_b)  # work was shared
    # (In a full run the session's all-queues worker may take a share too.)
    assert calendar_a + calendar_b <= len(bookings)
    # Queues only one host consumes stayed on that host.
    assert not any(task == "handlers.bookings.payment_request" for task, _ in applied_a)
    assert not any(task == "handlers.bookings.accounting" for task, _ in applied_b)
    # No delivery was applied twice, on one host or across both...
    assert max((applied_a + applied_b).values()) == 1
    # ...and no effect exists twice, whoever applied it.
    per_booking = CalendarEntry.objects.filter(booking__in=bookings).values("booking")
    assert per_booking.count() == len(bookings)
    assert not per_booking.annotate(n=Count("pk")).filter(n__gt=1).exists()
    assert not LedgerEntry.objects.values("event", "kind").annotate(n=Count("pk")).filter(n__gt=1)
