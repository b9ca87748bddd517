"""The event pipeline end to end: real worker, real PostgreSQL and a real Redis broker."""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta
from typing import Protocol, cast

import pytest
from django.utils import timezone

from bookings.models import CalendarEntry
from bookings.selectors import property_calendar_month
from bookings.services import booking_cancel
from pms.choices import DeliveryStatus, FailedTaskStatus
from pms.models import EventDelivery, FailedTask
from pms.pipeline.broker_stats import queue_depths
from pms.pipeline.publishing import broker_breaker, delivery_task_id, publish_deliveries
from pms.pipeline.redis_client import redis_client
from pms.pipeline.relay import relay_due_deliveries
from testkit.processes import wait_until
from tests.support.fault_handlers import control_key
from tests.support.pipeline import assert_pipeline_settled, effects, emit_probe
from tests.support.servers import log_count
from tests.support.stays import book_stay

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


class _PurgeableChannel(Protocol):
    """What every kombu transport's channel has; kombu types default_channel as the
    abstract StdChannel, which declares no queue_purge."""

    def queue_purge(self, queue: str) -> int | None: ...


def _day_statuses(world, booking):
    weeks = property_calendar_month(
        tenant=world.tenant,
        property=world.property,
        year=booking.check_in.year,
        month=booking.check_in.month,
    )
    return {day.day: day.status for week in weeks for day in week}


def test_a_booking_reaches_the_calendar_and_cancelling_frees_the_dates(live_worker, alice, future):
    booking = book_stay(alice, future)
    deliveries = EventDelivery.objects.filter(event__aggregate_id=str(booking.pk))
    assert {(d.handler, d.queue) for d in deliveries} >= {
        ("bookings.calendar", "bookings"),
        ("bookings.accounting", "accounting"),
        ("bookings.payment_request", "payments"),
        ("automation.guest_booking_email", "messaging"),
        ("channelsync.outbound", "channelsync"),
    }
    assert {d.tenant_id for d in deliveries} == {alice.tenant.pk}

    assert_pipeline_settled()
    statuses = _day_statuses(alice, booking)
    assert statuses[booking.check_in] == "booked"
    assert statuses[booking.check_out - timedelta(days=1)] == "booked"
    assert statuses[booking.check_out] == "available"  # check-out day is free

    booking_cancel(booking=booking, reason="plans changed")
    assert_pipeline_settled()
    assert _day_statuses(alice, booking)[booking.check_in] == "available"


def test_one_event_is_delivered_to_every_subscriber_on_its_own_queue(live_worker, alice):
    event = emit_probe(alice.tenant)
    queues = dict(EventDelivery.objects.filter(event=event).values_list("handler", "queue"))
    assert queues == {"tests.effect": "bookings", "tests.second_effect": "accounting"}
    assert_pipeline_settled()
    assert effects(event, "tests.effect") == 1
    assert effects(event, "tests.second_effect") == 1


def test_duplicate_deliveries_of_one_message_apply_one_effect(live_worker, alice):
    event = emit_probe(alice.tenant)
    assert_pipeline_settled()
    delivery = EventDelivery.objects.get(event=event, handler="tests.effect")
    task_id = delivery_task_id(event.id, "tests.effect")

    for _ in range(3):  # a relay re-send, a broker redelivery, a concurrent copy
        publish_deliveries([delivery])
    wait_until(
        lambda: log_count(live_worker.logfile, f"[{task_id}] succeeded") >= 4,
        20,
        what="the three duplicates to run",
    )
    assert log_count(live_worker.logfile, f"[{task_id}] succeeded") == 4
    assert log_count(live_worker.logfile, "'duplicate'") >= 3
    assert effects(event) == 1
    assert_pipeline_settled()


def test_events_of_one_booking_delivered_newest_first_leave_the_newest_state(
    live_worker, alice, future
):
    from bookings.services import booking_modify

    live_worker_queues = ["bookings"]
    from config.celery import app

    app.control.cancel_consumer(live_worker_queues[0], destination=[live_worker.name], reply=True)
    try:
        booking = book_stay(alice, future)
        booking = booking_modify(
            booking=booking,
            check_in=future + timedelta(days=10),
            check_out=future + timedelta(days=12),
        )
        deliveries = list(
            EventDelivery.objects.filter(event__aggregate_id=str(booking.pk)).order_by(
                "-event__sequence"
            )
        )
        publish_deliveries(deliveries)  # newest first, on top of the in-order copies queued
    finally:
        app.control.add_consumer("bookings", destination=[live_worker.name], reply=True)
    assert_pipeline_settled()
    entry = CalendarEntry.objects.get(booking=booking)
    assert (entry.start, entry.end, entry.active) == (booking.check_in, booking.check_out, True)
    assert entry.sequence == 2


def test_kill_9_of_a_worker_child_mid_handler_redoes_the_delivery_once(live_worker, alice):
    event = emit_probe(alice.tenant, mode="slow_once")
    client = redis_client()
    raw_pid = wait_until(
        lambda: cast(bytes | None, client.get(control_key("pid", event.id))),
        20,
        what="handler start",
    )
    pid = int(raw_pid)
    assert pid in live_worker.child_pids()
    os.kill(pid, signal.SIGKILL)

    assert_pipeline_settled()
    assert effects(event) == 1
    assert (
        EventDelivery.objects.get(event=event, handler="tests.effect").status == DeliveryStatus.DONE
    )
    assert not FailedTask.objects.exists()


def test_broker_down_while_booking_then_relay_delivers_everything_once(
    live_worker, alice, broker, future
):
    if not broker.controllable:
        pytest.skip("TEST_BROKER_URL names an external broker the tests cannot stop")
    broker.server.stop()
    try:
        started = time.monotonic()
        bookings = [book_stay(alice, future + timedelta(days=5 * i)) for i in range(5)]
        elapsed = time.monotonic() - started
        assert len(bookings) == 5  # every service call succeeded with the broker down
        assert elapsed < 10, f"bookings took {elapsed:.1f}s with the broker down"
        pending = EventDelivery.objects.filter(
            status=DeliveryStatus.PENDING, handler="bookings.calendar"
        ).count()
        assert pending == 5
    finally:
        broker.server.start()  # same port, empty: also a restart without persistence
        broker_breaker.reset()

    report = assert_pipeline_settled(timeout=60)
    assert report.applied == EventDelivery.objects.count()
    assert EventDelivery.objects.filter(handler="bookings.calendar", status="done").count() == 5
    assert CalendarEntry.objects.filter(active=True, property=alice.property).count() == 5


def test_deliveries_lost_by_a_redis_flush_are_re_sent_by_the_relay(
    live_worker, alice, broker, future
):
    if not broker.controllable:
        pytest.skip("TEST_BROKER_URL names an external broker the tests cannot flush")
    from config.celery import app

    app.control.cancel_consumer("bookings", destination=[live_worker.name], reply=True)
    try:
        bookings = [book_stay(alice, future + timedelta(days=5 * i)) for i in range(3)]
        wait_until(lambda: broker.server.client().llen("bookings") >= 3, 10, what="queued messages")
        broker.server.client().flushall()  # Redis restarted without persistence
        assert broker.server.client().llen("bookings") == 0
    finally:
        app.control.add_consumer("bookings", destination=[live_worker.name], reply=True)

    report = assert_pipeline_settled(timeout=60)
    assert report.applied == EventDelivery.objects.count()
    calendar = EventDelivery.objects.filter(handler="bookings.calendar")
    assert calendar.filter(status="done", publish_count__gte=1).count() == len(bookings)


def test_the_relay_leaves_a_message_queued_behind_a_backlog_and_re_sends_a_lost_one(
    live_worker, alice
):
    """A due delivery whose message still waits in its queue is not sent twice."""
    from config.celery import app

    def overdue(delivery: EventDelivery) -> None:
        EventDelivery.objects.filter(pk=delivery.pk).update(
            due_at=timezone.now() - timedelta(minutes=1)
        )

    app.control.cancel_consumer("accounting", destination=[live_worker.name], reply=True)
    try:
        event = emit_probe(alice.tenant, aggregate_id="backlog")
        waiting = EventDelivery.objects.get(event=event, handler="tests.second_effect")
        wait_until(lambda: queue_depths(queues=["accounting"])[0].depth, 10, what="a backlog")
        overdue(waiting)  # as if the backlog had held it past its deadline
        assert relay_due_deliveries() == 0
        waiting.refresh_from_db()
        assert waiting.publish_count == 0 and waiting.due_at > timezone.now()

        with app.connection_for_write() as connection:  # the message is lost after all
            cast(_PurgeableChannel, connection.default_channel).queue_purge("accounting")
        overdue(waiting)
        assert relay_due_deliveries() == 1
        waiting.refresh_from_db()
        assert waiting.publish_count == 1
    finally:
        app.control.add_consumer("accounting", destination=[live_worker.name], reply=True)
    assert_pipeline_settled()
    assert effects(event, "tests.second_effect") == 1


def test_the_relay_runs_as_a_celery_task(live_worker, alice):
    from pms.tasks import relay_outbox

    broker_breaker.trip()  # as after a failed publish: commits skip the broker for a while
    try:
        event = emit_probe(alice.tenant)
    finally:
        broker_breaker.reset()
    assert EventDelivery.objects.filter(event=event, publish_count=0).count() == 2
    relay_outbox.apply_async()
    wait_until(
        lambda: EventDelivery.objects.filter(event=event, publish_count=1).count() == 2,
        20,
        what="the relay task to re-send",
    )
    assert_pipeline_settled()
    assert effects(event) == 1


def test_a_handler_that_always_fails_transiently_ends_as_one_failed_task(
    live_worker, alice, mailbox
):
    event = emit_probe(alice.tenant, mode="transient")
    redis_client().set(control_key("fault", event.id), 1, ex=300)

    failed = wait_until(
        lambda: FailedTask.objects.filter(event=event).first(), 40, what="FailedTask"
    )
    assert failed.task_name == "handlers.tests.effect"
    assert failed.exception_class == "pms.pipeline.errors.TransientError"
    assert failed.attempts == 4  # first run + TASK_MAX_RETRIES=3
    assert failed.queue == "bookings" and failed.tenant_id == alice.tenant.pk
    assert failed.args == [failed.delivery_id]
    assert "simulated remote 503" in failed.traceback
    assert failed.delivery_id is not None
    assert EventDelivery.objects.get(pk=failed.delivery_id).status == DeliveryStatus.FAILED
    report = assert_pipeline_settled()
    assert report.failed_for_review == 1 and report.lost == 0

    alert = wait_until(lambda: mailbox.messages, 30, what="the staff alert email")[0]
    assert "ops@example.test" in alert["to"]
    assert "handlers.tests.effect" in alert["data"]
    wait_until(
        lambda: FailedTask.objects.filter(pk=failed.pk, alerted_at__isnull=False).exists(),
        10,
        what="the failure to be marked alerted",
    )
    assert effects(event) == 0


def test_a_permanent_error_goes_to_review_without_retrying(live_worker, alice):
    event = emit_probe(alice.tenant, mode="permanent")
    redis_client().set(control_key("fault", event.id), 1, ex=300)
    failed = wait_until(
        lambda: FailedTask.objects.filter(event=event).first(), 20, what="FailedTask"
    )
    assert failed.attempts == 1
    assert failed.exception_class == "pms.pipeline.errors.PermanentError"
    assert failed.status == FailedTaskStatus.OPEN
    assert_pipeline_settled()


def test_a_message_that_kills_its_worker_every_time_is_quarantined(live_worker, alice):
    event = emit_probe(alice.tenant, mode="poison")
    failed = wait_until(
        lambda: FailedTask.objects.filter(event=event).first(), 60, what="poison FailedTask"
    )
    assert failed.exception_class == "pms.pipeline.errors.PoisonMessageError"
    stored = redis_client().get(control_key("poison-starts", event.id))
    assert stored is not None
    starts = int(stored)
    assert starts == 3  # TASK_POISON_MAX_STARTS, then no further run
    assert_pipeline_settled()


def test_the_broker_dying_while_a_worker_holds_a_message_does_not_kill_the_worker(
    live_worker, alice, broker
):
    """kombu raises while restoring unacked messages on a dead connection (pms.pipeline.broker_guard)."""
    if not broker.controllable:
        pytest.skip("TEST_BROKER_URL names an external broker the tests cannot stop")
    from config.celery import app

    event = emit_probe(alice.tenant, mode="slow_once")  # holds its message for 60 s
    client = redis_client()
    wait_until(lambda: client.get(control_key("pid", event.id)), 20, what="handler start")
    broker.server.stop()
    time.sleep(2)  # the worker notices, closes its channel, tries to restore the message
    broker.server.start()
    broker_breaker.reset()

    # Still the same worker process, answering again after reconnecting.
    assert live_worker.process.poll() is None, "the worker died on the broker outage"
    wait_until(lambda: live_worker.pinged(app), 60, what="the worker to reconnect")
    assert_pipeline_settled(timeout=60)
    assert effects(event) == 1
