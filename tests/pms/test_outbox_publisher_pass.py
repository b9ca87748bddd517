"""The outbox publisher's passes in this process, on a broker no worker reads.

What it claims (pending deliveries nobody published, oldest first, a batch at a time),
what it sends (one message per delivery, the delivery's own task id, queue and tenant),
and what it gives back when the broker refuses. The publisher process itself, with the
worker and kill -9, is in test_outbox_publisher.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from pms.choices import DeliveryStatus
from pms.models import DomainEvent, EventDelivery
from pms.pipeline.publisher import BrokerUnavailable, publish_unsent, run_publisher
from pms.pipeline.publishing import CHANNEL, broker_breaker, delivery_task_id
from testkit.processes import wait_until
from tests.support.broker import queued_messages
from tests.support.pipeline import emit_probe


@pytest.fixture(autouse=True)
def _notify_mode(settings: Any) -> Iterator[None]:
    """Emitters only NOTIFY: what reaches the broker is what the publisher sent."""
    settings.OUTBOX_PUBLISH = "notify"
    broker_breaker.reset()
    yield
    broker_breaker.reset()


def _unpublished() -> list[int]:
    return list(
        EventDelivery.objects.filter(last_published_at__isnull=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def _task_ids(*events: DomainEvent) -> list[str]:
    return [
        delivery_task_id(d.event_id, d.handler)
        for d in EventDelivery.objects.filter(event__in=events).order_by("pk")
    ]


@contextmanager
def running_publisher(poll_seconds: float) -> Iterator[threading.Thread]:
    """``run_publisher`` in a thread of this process, stopped (and woken to see it) at exit."""
    stop = threading.Event()

    def publish() -> None:
        try:
            run_publisher(stop, poll_seconds=poll_seconds)
        finally:
            connection.close()

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        stop.set()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [CHANNEL])
        thread.join(10)
    assert not thread.is_alive()


@pytest.mark.django_db
def test_a_pass_sends_each_unpublished_delivery_once_as_its_own_task(alice, own_broker):
    event = emit_probe(alice.tenant)
    before = timezone.now()
    assert publish_unsent() == 2
    messages = queued_messages(own_broker.url)
    deliveries = {d.pk: d for d in EventDelivery.objects.filter(event=event)}
    assert sorted(m.task_id for m in messages) == sorted(_task_ids(event))
    for message in messages:
        (delivery_id,) = message.args
        delivery = deliveries[delivery_id]
        assert message.queue == delivery.queue
        assert message.task == f"handlers.{delivery.handler}"
        assert message.headers["tenant_id"] == alice.tenant.pk
        assert message.headers["event_id"] == str(event.id)
        assert delivery.last_published_at is not None and delivery.last_published_at >= before
        assert delivery.status == DeliveryStatus.PENDING  # sent, not applied
    assert publish_unsent() == 0  # marked: the next pass finds nothing
    assert len(queued_messages(own_broker.url)) == 2


@pytest.mark.django_db
def test_a_pass_takes_one_batch_oldest_first(alice, own_broker):
    first = emit_probe(alice.tenant, aggregate_id="first")
    second = emit_probe(alice.tenant, aggregate_id="second")
    oldest, *rest = _unpublished()
    assert publish_unsent(batch_size=1) == 1
    assert _unpublished() == rest
    assert publish_unsent(batch_size=2) == 2
    assert publish_unsent(batch_size=2) == 1
    assert _unpublished() == []
    sent = [m.task_id for m in queued_messages(own_broker.url)]
    assert sorted(sent) == sorted(_task_ids(first, second))
    assert EventDelivery.objects.get(pk=oldest).last_published_at is not None


@pytest.mark.django_db
def test_applied_and_failed_deliveries_are_not_published(alice, own_broker):
    event = emit_probe(alice.tenant)
    applied, failed = EventDelivery.objects.filter(event=event).order_by("pk")
    EventDelivery.objects.filter(pk=applied.pk).update(status=DeliveryStatus.DONE)
    EventDelivery.objects.filter(pk=failed.pk).update(status=DeliveryStatus.FAILED)
    assert publish_unsent() == 0
    assert queued_messages(own_broker.url) == []


@pytest.mark.django_db
def test_a_delivery_whose_handler_is_gone_is_claimed_but_not_sent(alice, own_broker):
    event = emit_probe(alice.tenant)
    orphan, kept = EventDelivery.objects.filter(event=event).order_by("pk")
    EventDelivery.objects.filter(pk=orphan.pk).update(handler="tests.renamed_away")
    assert publish_unsent() == 2
    assert [m.args for m in queued_messages(own_broker.url)] == [[kept.pk]]
    # Left marked: the relay records it for review once it is due, never re-sends it.
    assert _unpublished() == []


@pytest.mark.django_db
def test_a_refused_batch_is_given_back_for_the_next_pass(alice, own_broker):
    event = emit_probe(alice.tenant)
    waiting = _unpublished()
    deadlines = dict(EventDelivery.objects.filter(event=event).values_list("pk", "due_at"))
    own_broker.server.stop()
    try:
        with pytest.raises(BrokerUnavailable, match="2 deliveries not sent"):
            publish_unsent()
        assert _unpublished() == waiting
        # Given back to the publisher, not to the relay: their deadline is unchanged, so
        # the relay does not send them too while the publisher retries.
        after = dict(EventDelivery.objects.filter(event=event).values_list("pk", "due_at"))
        assert after == deadlines
    finally:
        own_broker.server.start()
        broker_breaker.reset()
    assert publish_unsent() == 2
    assert len(queued_messages(own_broker.url)) == 2


@pytest.mark.django_db(transaction=True)
def test_the_publisher_sends_what_was_committed_before_and_after_it_started(alice, own_broker):
    before = emit_probe(alice.tenant, aggregate_id="before")
    # A poll too long to matter: only the NOTIFY can wake it in time.
    with running_publisher(poll_seconds=60):
        wait_until(lambda: len(queued_messages(own_broker.url)) == 2, 10, what="drain")
        after = emit_probe(alice.tenant, aggregate_id="after")
        wait_until(lambda: len(queued_messages(own_broker.url)) == 4, 10, what="notified")
    sent = [m.task_id for m in queued_messages(own_broker.url)]
    assert sorted(sent) == sorted(_task_ids(before, after))


@pytest.mark.django_db(transaction=True)
def test_the_publisher_outlives_a_broker_outage(alice, own_broker, caplog):
    own_broker.server.stop()
    with running_publisher(poll_seconds=0.2) as thread:
        event = emit_probe(alice.tenant)
        wait_until(
            lambda: any("deliveries not sent; retrying" in m for m in caplog.messages),
            10,
            what="the refusal",
        )
        assert thread.is_alive()
        own_broker.server.start()
        broker_breaker.reset()
        wait_until(lambda: len(queued_messages(own_broker.url)) == 2, 15, what="the resend")
    assert sorted(m.task_id for m in queued_messages(own_broker.url)) == sorted(_task_ids(event))
    assert "outbox publisher: 2 deliveries not sent; retrying" in caplog.messages


def _publisher_backends() -> list[int]:
    """The publisher thread's two sessions: its LISTEN connection and its claim's."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND (query = %s OR query LIKE %s)",
            [f"LISTEN {CHANNEL}", "WITH batch AS MATERIALIZED%"],
        )
        return [pid for (pid,) in cursor.fetchall()]


def _terminate(pids: list[int]) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", [pids])


@pytest.mark.django_db(transaction=True)
def test_the_publisher_reconnects_after_postgresql_drops_it(alice, own_broker, caplog):
    """PostgreSQL restarted under it (both its sessions terminated): it says so, opens a
    new LISTEN session and a new claim session, and what is committed next is sent."""
    caplog.set_level("INFO", logger="pms.pipeline.publisher")
    with running_publisher(poll_seconds=0.2):
        first = emit_probe(alice.tenant, aggregate_id="first")
        wait_until(lambda: len(queued_messages(own_broker.url)) == 2, 10, what="first sent")
        wait_until(lambda: len(_publisher_backends()) == 2, 10, what="both sessions seen")
        dropped = _publisher_backends()
        _terminate(dropped)
        wait_until(
            lambda: any("database unavailable" in m for m in caplog.messages),
            10,
            what="the publisher to notice",
        )
        second = emit_probe(alice.tenant, aggregate_id="second")
        wait_until(lambda: len(queued_messages(own_broker.url)) == 4, 15, what="second sent")
        wait_until(
            lambda: len(set(_publisher_backends()) - set(dropped)) == 2,
            10,
            what="two new sessions",
        )
    sent = sorted(m.task_id for m in queued_messages(own_broker.url))
    assert sent == sorted(_task_ids(first, second))
    warnings = [r for r in caplog.records if "database unavailable" in r.getMessage()]
    assert warnings and all(r.levelname == "WARNING" for r in warnings)
    said = warnings[0].getMessage()
    assert said.startswith("outbox publisher: database unavailable (")
    assert said.endswith("); reconnecting")
    cause = said.removeprefix("outbox publisher: database unavailable (")
    assert cause.removesuffix("); reconnecting") not in ("", "None", "%s")  # PostgreSQL's words
    listening = [m for m in caplog.messages if m == f"outbox publisher listening on {CHANNEL}"]
    assert len(listening) >= 2  # once at start, once after the reconnect


def _claim_session_last_query() -> object:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT query_start FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND query LIKE %s",
            ["WITH batch AS MATERIALIZED%"],
        )
        row = cursor.fetchone()
    return row[0] if row else None


@pytest.mark.django_db(transaction=True)
def test_the_publisher_drains_batch_after_batch_then_waits_quietly(alice, own_broker, settings):
    """A backlog bigger than a batch leaves in full before the publisher waits; then,
    with nothing to send, it waits for a notification and asks PostgreSQL nothing."""
    settings.OUTBOX_RELAY_BATCH = 2
    events = [emit_probe(alice.tenant, aggregate_id=f"backlog-{i}") for i in range(3)]
    # A poll too long to matter: only the drain can send the backlog in time.
    with running_publisher(poll_seconds=60):
        wait_until(lambda: len(queued_messages(own_broker.url)) == 6, 10, what="the backlog")
        wait_until(lambda: _claim_session_last_query() is not None, 10, what="its session")
        first = _claim_session_last_query()
        time.sleep(1.0)
        assert _claim_session_last_query() == first  # no claim while nothing was notified
    assert sorted(m.task_id for m in queued_messages(own_broker.url)) == sorted(_task_ids(*events))
    wait_until(lambda: _publisher_backends() == [], 10, what="its sessions closed on stop")
