"""A server that trickles its answer is cut at the exchange's wall-clock deadline.

Each byte comes well within any socket timeout, so only a deadline on the whole
exchange (connect + send + the whole answer) stops it; the cut counts as a failed
attempt wherever the exchange happens (webhooks, feed fetches, channel pushes).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from django.db import transaction

from channelsync.choices import ChannelKind, OutboundStatus
from channelsync.feeds.fetch import FetchTransientError, safe_request
from channelsync.models import Channel, ChannelUpdate, WebhookDelivery
from channelsync.services import (
    channel_updates_push,
    channel_updates_record,
    webhook_deliveries_record,
    webhook_delivery_attempt,
    webhook_subscription_create,
)
from channelsync.tasks import import_channel
from pms.pipeline.errors import TransientError
from tests.channelsync.support import TricklingServer
from tests.support.http_peer import Reply

# Long enough that a client without a whole-exchange deadline waits far longer.
GIVE_UP_AFTER = 8.0
DEADLINE = 1.0
SLACK = 2.0


@pytest.fixture
def trickler() -> Iterator[TricklingServer]:
    server = TricklingServer(interval=0.2, give_up_after=GIVE_UP_AFTER).start()
    yield server
    server.stop()


@pytest.fixture
def body_trickler() -> Iterator[TricklingServer]:
    server = TricklingServer(
        interval=0.2, give_up_after=GIVE_UP_AFTER, headers_at_once=True
    ).start()
    yield server
    server.stop()


def test_a_server_trickling_its_status_line_is_cut_at_the_deadline(trickler):
    started = time.monotonic()
    with pytest.raises(FetchTransientError, match="timed out"):
        safe_request("GET", trickler.url("/feed.ics"), timeout=DEADLINE)
    assert time.monotonic() - started < DEADLINE + SLACK


def test_a_server_trickling_its_body_is_cut_at_the_deadline(body_trickler):
    started = time.monotonic()
    with pytest.raises(FetchTransientError, match="timed out"):
        safe_request("POST", body_trickler.url("/hook"), data=b"{}", timeout=DEADLINE)
    assert time.monotonic() - started < DEADLINE + SLACK


def test_a_fast_answer_is_not_affected_by_the_deadline_timer(peer):
    peer.routes["/feed.ics"] = Reply(200, b"ok")
    for _ in range(3):
        assert safe_request("GET", peer.url("/feed.ics"), timeout=DEADLINE).body == b"ok"
    time.sleep(DEADLINE + 0.2)  # the timers of finished exchanges fire on nothing


@pytest.mark.django_db
def test_a_trickling_webhook_receiver_is_a_failed_attempt_that_counts_towards_disable(
    settings, alice, trickler
):
    settings.WEBHOOK_TIMEOUT = DEADLINE
    settings.WEBHOOK_DISABLE_AFTER_FAILURES = 2
    settings.WEBHOOK_DISABLE_AFTER_SECONDS = 0
    subscription = webhook_subscription_create(
        tenant=alice.tenant, url=trickler.url("/hook"), event_types=["*"], send_test=False
    )
    with transaction.atomic():
        webhook_deliveries_record(
            tenant_id=alice.tenant.pk,
            event_id=uuid.uuid4(),
            event_type="booking.created",
            payload={},
        )
    delivery = WebhookDelivery.objects.get(subscription=subscription)

    started = time.monotonic()
    assert webhook_delivery_attempt(delivery_id=delivery.pk) == "failed"
    assert time.monotonic() - started < DEADLINE + SLACK
    delivery.refresh_from_db()
    assert delivery.attempts == 1 and delivery.status == OutboundStatus.PENDING
    assert "timed out" in delivery.last_error
    subscription.refresh_from_db()
    assert subscription.consecutive_failures == 1

    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=delivery.created_at)
    assert webhook_delivery_attempt(delivery_id=delivery.pk) == "disabled"
    subscription.refresh_from_db()
    assert not subscription.is_active and "timed out" in subscription.disabled_reason


@pytest.mark.django_db
def test_a_trickling_feed_is_a_failed_fetch_recorded_on_the_channel(
    settings, make_channel, body_trickler
):
    settings.CHANNEL_FETCH_TIMEOUT = DEADLINE
    channel = make_channel(import_url=body_trickler.url("/feed.ics"))
    started = time.monotonic()
    with pytest.raises(TransientError, match="timed out"):
        import_channel(channel.pk)
    assert time.monotonic() - started < DEADLINE + SLACK
    channel = Channel.objects.get(pk=channel.pk)
    assert channel.consecutive_failures == 1 and "timed out" in channel.last_error


@pytest.mark.django_db
def test_a_trickling_push_api_is_a_failed_attempt_of_the_head_update(
    settings, make_channel, trickler
):
    settings.CHANNEL_PUSH_TIMEOUT = DEADLINE
    channel = make_channel(
        name="API",
        kind=ChannelKind.PUSH_API,
        push_url=trickler.url("/availability"),
        push_listing_id="L-1",
        rate_limit_per_second=50,
        rate_limit_burst=50,
    )
    channel_updates_record(
        channel=channel,
        event_id=uuid.uuid4(),
        aggregate_type="booking",
        aggregate_id="7",
        sequence=1,
        payload={"start": "2030-01-01", "end": "2030-01-03", "available": False},
    )
    started = time.monotonic()
    with pytest.raises(TransientError, match="timed out"):
        channel_updates_push(channel_id=channel.pk)
    assert time.monotonic() - started < DEADLINE + SLACK
    update = ChannelUpdate.objects.get(channel=channel)
    assert update.status == OutboundStatus.PENDING and update.attempts == 1
    assert "timed out" in update.last_error
