"""Every periodic job costs a bounded number of statements, whatever the data.

Each beat task in config.beat.DEFAULT_PERIODIC_TASKS runs in-process over the due
work of three homes, then over that of nine more: its statement count must not move.
Each home brings work for every sweep: a day of arrivals, departures and cleaning
for a cleaner with an email address, a request to book left to expire, a reminder
coming due, an iCal channel due to poll, a webhook delivery due, a failed task,
and undelivered deliveries past their deadline. Sweeps claim work in batches and
fan it out as tasks: what one item costs is paid by the item's own task. A job
that reports how much it did must have done some both times, or the comparison
would prove nothing.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from typing import Any

import pytest
import time_machine
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from automation.models import CleaningTask
from automation.services import outbound_message_queue
from bookings.choices import BookingStatus
from bookings.services import booking_create
from channelsync.services import channel_create
from channelsync.services.webhooks import webhook_subscription_create
from config.beat import DEFAULT_PERIODIC_TASKS
from pms.choices import DeliveryStatus
from pms.models import EventDelivery, FairWorkItem
from tests.automation.conftest import make_cleaner
from tests.factories import GuestFactory
from tests.pms.test_dashboard import _day
from tests.support.pipeline import emit_probe
from tests.support.quiesce import purge_task_queues

pytestmark = pytest.mark.django_db

# Jobs whose result counts what they did: it must be above zero in both runs.
COUNTED = {
    "pms.tasks.relay_outbox",
    "pms.tasks.fair_dispatch",
    "bookings.tasks.sweep_expired_requests",
    "channelsync.tasks.poll_due_channels",
    "automation.tasks.sweep_due_messages",
    "automation.tasks.sweep_cleaning_runs",
}


@pytest.fixture(autouse=True)
def _a_morning() -> Iterator[None]:
    """The test makes today's work, then runs each job later today (``_moment``). Run
    from the evening, "later" was tomorrow, whose cleaning lists nobody had made: the
    cleaning sweep found nothing to do (a CI run at 22:00 UTC). So the test's today
    starts in the morning, whatever the clock says."""
    morning = timezone.make_aware(datetime.combine(timezone.localdate(), time(9, 0)))
    with time_machine.travel(morning, tick=True):
        yield


@pytest.fixture(autouse=True)
def _no_messages_left_behind() -> Iterator[None]:
    """The sweeps publish (the relay, time-critical sends, fair admissions) about rows
    this test rolls back: drop those messages, or the session worker's first tests
    would wait behind hundreds of them."""
    yield
    purge_task_queues()


def _busy(world: Any, homes: int, *, first: bool) -> None:
    """``homes`` homes' worth of due work for every sweep."""
    # The work admitted by an earlier pass ran meanwhile (no worker runs here): its
    # slots in the tenant's share are free again.
    FairWorkItem.objects.filter(dispatched_at__isnull=False).update(finished_at=timezone.now())
    made = _day(world, n_properties=homes, new_homes=not first)
    cleaner = make_cleaner(world, f"cleaner-{uuid.uuid4().hex[:6]}")
    today = timezone.localdate()
    for index, (_leaving, arriving) in enumerate(made):
        home = arriving.property
        CleaningTask.objects.filter(property=home).update(assignee=cleaner)
        home.booking_request_expiry_hours = 1
        home.save(update_fields=["booking_request_expiry_hours"])
        start = today + timedelta(days=40)
        with transaction.atomic():
            booking_create(
                tenant=world.tenant,
                property=home,
                guest=GuestFactory.create(tenant=world.tenant),
                check_in=start,
                check_out=start + timedelta(days=2),
                status=BookingStatus.REQUESTED,
            )
            outbound_message_queue(
                tenant_id=world.tenant.pk,
                idempotency_key=f"reminder:{uuid.uuid4()}",
                kind="pre_arrival_reminder",
                recipient="guest@example.test",
                subject="See you soon",
                body="Your stay starts soon.",
                booking=arriving,
                send_after=timezone.now() + timedelta(hours=1),
            )
            channel_create(
                tenant=world.tenant,
                property=home,
                name=f"feed {home.pk}-{index}",
                kind="ical",
                import_url=f"https://feeds.example.test/{home.pk}.ics",
                poll_interval=timedelta(minutes=15),
            )
            webhook_subscription_create(
                tenant=world.tenant,
                url=f"https://hooks.example.test/{home.pk}",
                event_types=[],
                send_test=True,
            )
        emit_probe(world.tenant, aggregate_id=f"probe-{uuid.uuid4().hex[:8]}")
    EventDelivery.objects.filter(status=DeliveryStatus.PENDING).update(
        due_at=timezone.now() - timedelta(minutes=5)
    )


def _moment() -> datetime:
    """Later today (cleaning runs are claimed once the local hour has passed), and past
    every hour-long expiry and delay set above."""
    evening = timezone.make_aware(datetime.combine(timezone.localdate(), time(23, 0)))
    return max(evening, timezone.now() + timedelta(hours=2))


def _run(task_name: str) -> tuple[int, Any]:
    module, _, function = task_name.rpartition(".")
    task = getattr(importlib.import_module(module), function)
    with (
        time_machine.travel(_moment(), tick=False),
        CaptureQueriesContext(connection) as queries,
    ):
        result = task()
    return len(queries), result


def _did_work(result: Any) -> bool:
    return bool(sum(result.values()) if isinstance(result, dict) else result)


@pytest.mark.parametrize("spec", DEFAULT_PERIODIC_TASKS, ids=lambda spec: spec.task)
def test_the_job_costs_the_same_statements_for_three_homes_or_nine_more(
    spec, alice, broker, monkeypatch
):
    if spec.task == "pms.tasks.ops_alerts_evaluate":
        # Its notifications refuse to run inside a transaction (network I/O), and a test's
        # database work is one: count the evaluation, whose statements follow the rules
        # and their incidents (queues, channels), never the homes or bookings.
        monkeypatch.setattr("pms.monitoring.alerts.alert_notifications_send", lambda: 0)
    _run(spec.task)  # a first pass may do one-off work (first samples, schedules)
    _busy(alice, 3, first=True)
    small, small_result = _run(spec.task)
    _busy(alice, 9, first=False)
    large, large_result = _run(spec.task)
    if spec.task in COUNTED:
        assert _did_work(small_result) and _did_work(large_result), (small_result, large_result)
    assert large == small, f"{spec.task}: {small} statements for 3 homes' work, {large} for 9"
