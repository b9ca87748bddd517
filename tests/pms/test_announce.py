"""Change notices (pms.pipeline.announce): sent after commit, never on rollback, never raised."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
import redis
from django.db import connection, transaction
from django.utils import timezone
from redis.backoff import NoBackoff
from redis.retry import Retry

from pms.models import EventDelivery
from pms.pipeline import announce as announce_module
from pms.pipeline.announce import CLEANING, announce, live_channel
from pms.pipeline.delivery import run_delivery
from pms.pipeline.redis_client import redis_client
from pms.pipeline.registry import get_handler
from testkit.processes import free_port
from tests.support import fault_handlers
from tests.support.pipeline import emit_probe
from tests.support.stays import book_stay

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def notices():
    """The notices published while the test runs, read from Redis as the live server does."""
    pubsub = redis_client().pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(live_channel())
    pubsub.get_message(timeout=1)

    def read(seconds: float = 0.5) -> list[dict]:
        found, deadline = [], time.monotonic() + seconds
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.1)
            if message and message["type"] == "message":
                found.append(json.loads(message["data"]))
        return found

    yield read
    pubsub.close()


def test_a_notice_follows_the_commit_and_never_a_rollback(notices):
    with transaction.atomic():
        announce(tenant_id=7, topic=CLEANING, property_id=3, booking_id=11)
        assert notices(0.3) == []  # not before the commit
    assert notices() == [{"tenant": 7, "topic": CLEANING, "property": 3, "booking": 11}]

    with pytest.raises(RuntimeError), transaction.atomic():
        announce(tenant_id=7, topic="booking")
        raise RuntimeError("the service failed")
    assert notices() == []


def test_a_booking_announces_its_tenant_home_and_booking(notices, alice):
    booking = book_stay(alice, timezone.localdate() + timedelta(days=5))
    assert {
        "tenant": alice.tenant.pk,
        "topic": "booking",
        "property": alice.property.pk,
        "booking": booking.pk,
    } in notices()


def test_identical_notices_of_a_burst_are_sent_once(notices):
    with transaction.atomic():
        for _ in range(500):
            announce(tenant_id=7, topic="block", property_id=3)
        announce(tenant_id=8, topic="block", property_id=3)
    assert sorted(n["tenant"] for n in notices()) == [7, 8]


def test_redis_away_loses_the_notice_not_the_work(notices, monkeypatch, alice):
    closed = redis.Redis(port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    monkeypatch.setattr(announce_module, "_client", lambda: closed)
    started = time.monotonic()
    announce_module._send(['{"topic": "probe"}'])  # does not raise, does not linger
    assert time.monotonic() - started < 2
    with transaction.atomic():
        booking = book_stay(alice, timezone.localdate() + timedelta(days=5))
        announce(tenant_id=alice.tenant.pk, topic="probe-away")
    # Committed; this process's notices were dropped (a worker's may still arrive: it
    # has its own client).
    assert booking.pk is not None
    assert all(notice["topic"] != "probe-away" for notice in notices())


def test_a_rolled_back_savepoint_keeps_the_transactions_batch(notices):
    with transaction.atomic():
        announce(tenant_id=7, topic="block")
        with pytest.raises(RuntimeError), transaction.atomic():
            announce(tenant_id=8, topic="block")
            raise RuntimeError("the inner step failed")
        announce(tenant_id=9, topic="block")
    # The batch's hook was registered outside the savepoint: it survives and sends what
    # was announced (the rolled-back one too: one extra render, never a missed one).
    assert sorted(n["tenant"] for n in notices()) == [7, 8, 9]
    with transaction.atomic():
        announce(tenant_id=10, topic="block")
    assert [n["tenant"] for n in notices()] == [10]


def test_switched_off_sends_nothing(notices, settings):
    settings.LIVE_UPDATES = False
    with transaction.atomic():
        announce(tenant_id=7, topic=CLEANING)
    assert notices() == []


def test_a_handler_that_applied_an_event_announces_it(notices, settings, alice):
    # Nobody sends the delivery (no publisher runs here): only this test applies it.
    settings.OUTBOX_PUBLISH = "notify"
    notices()  # what the fixtures announced (alice's memberships)
    with connection.cursor() as cursor:
        cursor.execute(fault_handlers.EFFECT_TABLE_SQL)  # where the probe handler writes
    event = emit_probe(alice.tenant, aggregate_id="announced-1")
    assert notices() == [{"tenant": alice.tenant.pk, "topic": "probe"}]  # the event's own
    handler = get_handler("tests.effect")
    assert handler is not None
    delivery = EventDelivery.objects.get(event=event, handler="tests.effect")
    assert run_delivery(handler, delivery.pk) == "applied"
    assert notices() == [{"tenant": alice.tenant.pk, "topic": "probe"}]  # the handler's
    assert run_delivery(handler, delivery.pk) == "duplicate"
    assert notices() == []  # a duplicate changed nothing


def test_notices_stay_on_their_databases_channel(notices):
    """Redis pub/sub ignores the database number: a stack sharing this Redis (``make test``
    beside ``make mutation``) listens on its own database's channel and hears nothing."""
    other = redis_client().pubsub(ignore_subscribe_messages=True)
    other.subscribe("pms:live:some_other_stack")
    other.get_message(timeout=1)
    try:
        assert live_channel() == f"pms:live:{connection.settings_dict['NAME']}"
        with transaction.atomic():
            announce(tenant_id=7, topic=CLEANING)
        assert notices() == [{"tenant": 7, "topic": CLEANING}]
        assert other.get_message(timeout=0.5) is None
    finally:
        other.close()
