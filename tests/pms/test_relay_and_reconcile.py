"""The relay's claim and the reconcile check, without a worker."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import close_old_connections
from django.utils import timezone

from config.celery import app as celery_app
from pms.choices import DeliveryStatus, FailedTaskStatus
from pms.models import DomainEvent, EventDelivery, FailedTask
from pms.pipeline import relay as relay_module
from pms.pipeline.deadlines import relay_backoff
from pms.pipeline.publishing import _BrokerBreaker, broker_breaker
from pms.pipeline.reconcile import reconcile, reconcile_until_settled
from pms.pipeline.relay import relay_due_deliveries
from tests.support.broker import publish_raw, queued_messages
from tests.support.pipeline import deliveries_refuse_updates, emit_probe


@pytest.mark.django_db(transaction=True)
def test_two_relays_running_at_once_never_send_a_delivery_twice(alice, monkeypatch):
    broker_breaker.trip()  # keep the commit-time publish out of the way
    events = [emit_probe(alice.tenant, aggregate_id=f"relay-{i}") for i in range(120)]
    EventDelivery.objects.update(due_at=timezone.now() - timedelta(minutes=5))
    sent: list[int] = []
    lock = threading.Lock()

    def fake_publish(deliveries, **kwargs):  # record instead of talking to the broker
        with lock:
            sent.extend(d.pk for d in deliveries)
        return len(deliveries)

    monkeypatch.setattr(relay_module, "publish_deliveries", fake_publish)
    barrier = threading.Barrier(2)

    def relay():
        barrier.wait()
        try:
            relay_due_deliveries(batch_size=10)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=relay) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    broker_breaker.reset()
    assert len(sent) == 2 * len(events)
    assert len(set(sent)) == len(sent)
    assert set(EventDelivery.objects.values_list("publish_count", flat=True)) == {1}


@pytest.mark.django_db
def test_the_relay_backs_off_a_delivery_it_already_re_sent():
    deadline = relay_backoff(0)
    assert relay_backoff(1) == 2 * deadline
    assert relay_backoff(10) == 16 * deadline


@pytest.mark.django_db
def test_reconcile_exits_non_zero_when_a_delivery_is_lost(alice, capsys):
    event = emit_probe(alice.tenant)
    call_command("reconcile")  # in flight: fine
    EventDelivery.objects.filter(event=event).update(due_at=timezone.now() - timedelta(hours=1))
    with pytest.raises(CommandError, match="2 deliveries lost"):
        call_command("reconcile")
    assert "overdue: 2" in capsys.readouterr().out.replace(" ", "").replace("overdue:", "overdue: ")


@pytest.mark.django_db
def test_a_failed_delivery_without_a_review_row_counts_as_lost(alice):
    event = emit_probe(alice.tenant)
    EventDelivery.objects.filter(event=event, handler="tests.effect").update(
        status=DeliveryStatus.FAILED
    )
    report = reconcile()
    assert report.failed_without_review == 1 and not report.ok
    assert report.failed_review_closed == 0 and report.failed_for_review == 0


@pytest.mark.django_db
def test_reconcile_is_scoped_to_a_tenant(alice, bob):
    emit_probe(alice.tenant)
    assert reconcile(tenant_id=bob.tenant.pk).deliveries == 0
    assert reconcile(tenant_id=alice.tenant.pk).deliveries == 2


@pytest.mark.django_db(transaction=True)
def test_relay_passes_during_a_broker_outage_do_not_inflate_the_backoff(
    alice, own_broker, settings
):
    broker_breaker.trip()
    try:
        event = emit_probe(alice.tenant)
    finally:
        broker_breaker.reset()
    EventDelivery.objects.filter(event=event).update(due_at=timezone.now() - timedelta(minutes=1))
    own_broker.server.stop()
    try:
        for _ in range(3):
            assert relay_due_deliveries() == 0
            EventDelivery.objects.filter(event=event).update(
                due_at=timezone.now() - timedelta(seconds=1)
            )
        rows = list(EventDelivery.objects.filter(event=event))
        assert {row.publish_count for row in rows} == {0}  # nothing left: nothing counted
    finally:
        own_broker.server.start()
        broker_breaker.reset()
    assert relay_due_deliveries() == 2  # the broker is back: sent, counted once
    assert set(
        EventDelivery.objects.filter(event=event).values_list("publish_count", flat=True)
    ) == {1}


def _due_now(event) -> None:
    EventDelivery.objects.filter(event=event).update(due_at=timezone.now() - timedelta(seconds=1))


@pytest.mark.django_db
def test_a_delivery_whose_message_still_waits_in_its_queue_is_not_sent_twice(
    alice, own_broker, django_capture_on_commit_callbacks, caplog
):
    broker_breaker.reset()
    with django_capture_on_commit_callbacks(execute=True):
        event = emit_probe(alice.tenant)  # its messages wait: no worker reads this broker
    assert len(queued_messages(own_broker.url)) == 2
    _due_now(event)
    assert relay_due_deliveries() == 0  # behind the backlog: looked at again later
    assert "relay: 2 due deliveries still wait behind a backlog" in caplog.messages
    assert len(queued_messages(own_broker.url)) == 2
    for delivery in EventDelivery.objects.filter(event=event):
        assert delivery.publish_count == 0 and delivery.last_published_at is None
        # Looked at again one deadline later (not backed off: nothing was sent).
        assert delivery.due_at > timezone.now() + relay_backoff(0) - timedelta(seconds=5)
        assert delivery.due_at <= timezone.now() + relay_backoff(0)

    # Sent a minute before the oldest message that waits: its own message was lost.
    EventDelivery.objects.filter(event=event).update(
        created_at=timezone.now() - timedelta(minutes=1)
    )
    _due_now(event)
    before = timezone.now()
    assert relay_due_deliveries() == 2
    assert len(queued_messages(own_broker.url)) == 4
    for delivery in EventDelivery.objects.filter(event=event):
        sent_at = delivery.last_published_at
        assert delivery.publish_count == 1 and sent_at is not None and sent_at >= before
        assert delivery.due_at == sent_at + relay_backoff(1)


@pytest.mark.django_db
def test_the_relay_sends_every_due_delivery_batch_after_batch(alice, own_broker):
    events = [emit_probe(alice.tenant, aggregate_id=f"batch-{i}") for i in range(3)]
    for event in events:
        _due_now(event)
    not_due = emit_probe(alice.tenant, aggregate_id="not-due")
    assert relay_due_deliveries(batch_size=2) == 6
    sent = sorted(m.args[0] for m in queued_messages(own_broker.url))
    due = EventDelivery.objects.filter(event__in=events)
    assert sent == sorted(due.values_list("pk", flat=True))
    assert set(due.values_list("publish_count", flat=True)) == {1}
    assert set(
        EventDelivery.objects.filter(event=not_due).values_list("publish_count", flat=True)
    ) == {0}
    assert relay_due_deliveries(batch_size=2) == 0  # backed off: nothing is due
    # Not applied a backoff later, and their messages are not the ones waiting (those
    # were sent a minute after them): lost again, so sent again and counted twice.
    due.update(last_published_at=timezone.now() - timedelta(minutes=1))
    for event in events:
        _due_now(event)
    assert relay_due_deliveries(batch_size=4) == 6
    for delivery in due:
        assert delivery.publish_count == 2 and delivery.last_published_at is not None
        assert delivery.due_at == delivery.last_published_at + relay_backoff(2)


@pytest.mark.django_db
def test_a_relay_pass_the_broker_refused_is_tried_again_a_relay_interval_later(
    alice, own_broker, settings
):
    event = emit_probe(alice.tenant)
    _due_now(event)
    own_broker.server.stop()
    try:
        before = timezone.now()
        assert relay_due_deliveries() == 0
    finally:
        own_broker.server.start()
        broker_breaker.reset()
    interval = timedelta(seconds=settings.OUTBOX_RELAY_INTERVAL)
    for delivery in EventDelivery.objects.filter(event=event):
        assert delivery.publish_count == 0
        assert before + interval <= delivery.due_at <= timezone.now() + interval


@pytest.mark.django_db
def test_reconcile_prints_every_count_as_json(alice, capsys):
    event = emit_probe(alice.tenant)
    EventDelivery.objects.filter(event=event, handler="tests.effect").update(
        status=DeliveryStatus.DONE
    )
    call_command("reconcile", "--json")
    counts = json.loads(capsys.readouterr().out)
    assert counts == {
        "events": 1,
        "deliveries": 2,
        "applied": 1,
        "failed_for_review": 0,
        "in_flight": 1,
        "overdue": 0,
        "failed_without_review": 0,
        "failed_review_closed": 0,
        "pending_without_handler": 0,
        "republished_unapplied": 0,
        "events_without_deliveries": 0,
        "open_failed_tasks": 0,
        "lost": 0,
        "ok": True,
    }


@pytest.mark.django_db
def test_waiting_to_settle_runs_the_relay_and_gives_up_after_the_timeout(alice, bob, own_broker):
    event = emit_probe(alice.tenant)
    _due_now(event)  # due, within the grace: in flight
    started = time.monotonic()
    report = reconcile_until_settled(timeout=0.5, poll=0.05)
    assert 0.5 <= time.monotonic() - started < 5
    assert report.in_flight == 2 and report.ok and not report.settled
    assert set(
        EventDelivery.objects.filter(event=event).values_list("publish_count", flat=True)
    ) == {1}  # the relay re-sent them while it waited
    assert len(queued_messages(own_broker.url)) == 2

    _due_now(event)
    reconcile_until_settled(timeout=0.2, poll=0.05, relay=False)
    assert len(queued_messages(own_broker.url)) == 2  # no relay: nothing sent

    started = time.monotonic()
    assert reconcile_until_settled(timeout=30, tenant_id=bob.tenant.pk).settled
    EventDelivery.objects.filter(event=event).update(status=DeliveryStatus.DONE)
    assert reconcile_until_settled(timeout=30).settled
    assert time.monotonic() - started < 5  # settled: no waiting


def test_a_tripped_broker_breaker_skips_publishing_for_its_cooldown_only():
    breaker = _BrokerBreaker(cooldown=0.3)
    assert not breaker.is_open()
    breaker.trip()
    assert breaker.is_open()
    time.sleep(0.4)
    assert not breaker.is_open()
    breaker.trip()
    breaker.reset()
    assert not breaker.is_open()
    assert _BrokerBreaker().cooldown == 5.0


@pytest.mark.django_db
def test_reconcile_counts_each_tenants_events_and_open_reviews_only(alice, bob):
    now = timezone.now()
    event = emit_probe(alice.tenant)
    for task_id, status in (
        ("open", FailedTaskStatus.OPEN),
        ("retrying", FailedTaskStatus.RETRYING),
        ("resolved", FailedTaskStatus.RESOLVED),
    ):
        FailedTask.objects.create(
            task_id=task_id,
            task_name="pms.tasks.relay_outbox",
            tenant=alice.tenant,
            status=status,
            exception_class="RuntimeError",
            first_failed_at=now,
            last_failed_at=now,
        )
    mine, theirs = reconcile(tenant_id=alice.tenant.pk), reconcile(tenant_id=bob.tenant.pk)
    assert (mine.events, mine.open_failed_tasks) == (1, 2)
    assert (theirs.events, theirs.open_failed_tasks) == (0, 0)
    assert reconcile().events_without_deliveries == 0

    EventDelivery.objects.filter(event=event).delete()
    report = reconcile()
    assert report.events_without_deliveries == 1 and not report.ok
    DomainEvent.objects.filter(pk=event.pk).update(event_type="test.nobody_listens")
    assert reconcile().events_without_deliveries == 0  # no handler: no delivery expected


@pytest.mark.django_db
def test_a_relay_pass_with_nothing_due_is_one_query(alice, django_assert_num_queries):
    """Beat runs it every few seconds: with nothing due, no claim and no broker round trip."""
    event = emit_probe(alice.tenant)  # pending, due only after its deadline
    EventDelivery.objects.filter(event=event, handler="tests.effect").update(
        status=DeliveryStatus.DONE, due_at=timezone.now() - timedelta(minutes=1)
    )
    with django_assert_num_queries(1):
        assert relay_due_deliveries() == 0


@pytest.mark.django_db(transaction=True)
def test_refused_sends_that_cannot_be_rescheduled_are_logged_and_keep_their_backoff(
    alice, own_broker, caplog
):
    """The broker refuses the relay's sends and PostgreSQL then refuses the reschedule:
    the relay says so, and the deliveries are due again after their first backoff."""
    broker_breaker.trip()  # keep the commit-time publish out of the way
    event = emit_probe(alice.tenant)
    broker_breaker.reset()
    _due_now(event)
    own_broker.server.stop()
    try:
        with deliveries_refuse_updates("NEW.publish_count < OLD.publish_count"):
            before = timezone.now()
            assert relay_due_deliveries() == 0
    finally:
        own_broker.server.start()
        broker_breaker.reset()
    (record,) = [r for r in caplog.records if "reschedule" in r.getMessage()]
    assert record.getMessage() == "could not reschedule 2 unsent deliveries"
    assert record.levelname == "ERROR"
    assert record.exc_info and record.exc_info[0] is not None  # the traceback, logged
    for delivery in EventDelivery.objects.filter(event=event):
        assert delivery.publish_count == 1  # counted as sent: it may have been
        assert delivery.due_at >= before + relay_backoff(1)


@pytest.mark.django_db
def test_a_queue_whose_waiting_message_has_no_publish_time_holds_nothing_back(
    alice, own_broker, caplog
):
    """A message nobody stamped (another producer, a garbled header) waits in the
    handlers' queue: its age is unknown, so it proves no backlog and the relay sends."""
    broker_breaker.trip()
    event = emit_probe(alice.tenant)
    broker_breaker.reset()
    for queue_name in {d.queue for d in EventDelivery.objects.filter(event=event)}:
        publish_raw(
            celery_app, queue_name, {"unstamped": True}, headers={"published_at": "sometime"}
        )
    _due_now(event)
    assert relay_due_deliveries() == 2
    assert "backlog" not in caplog.text
