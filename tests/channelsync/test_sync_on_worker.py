"""Channel sync across Celery: a real worker, broker, loopback feeds and receivers."""

from __future__ import annotations

import json
from datetime import timedelta
from itertools import pairwise

import pytest
from django.utils import timezone

from bookings.services import booking_cancel, booking_create, booking_modify
from channelsync.choices import ChannelKind, ChannelStatus, OutboundStatus
from channelsync.models import Channel, ChannelUpdate, WebhookDelivery
from channelsync.services.webhooks import signature_valid, webhook_subscription_create
from channelsync.tasks import import_channel
from pms.models import DomainEvent, FailedTask
from testkit.processes import wait_until
from tests.support.http_peer import Reply
from tests.support.pipeline import assert_pipeline_settled

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _gaps(hits):
    return [later.at - earlier.at for earlier, later in pairwise(hits)]


def test_import_429_then_5xx_retries_with_the_right_delays_then_fails_for_review(
    live_worker, peer, make_channel
):
    peer.routes["/feed.ics"] = [Reply(429, headers={"Retry-After": "2"}), Reply(500)]
    channel = make_channel(import_url=peer.url("/feed.ics"))
    Channel.objects.filter(pk=channel.pk).update(next_poll_at=None)
    import_channel.apply_async(args=(channel.pk,))
    failed = wait_until(
        lambda: FailedTask.objects.filter(task_name="channelsync.tasks.import_channel").first(),
        40,
        what="the import to give up",
    )
    hits = peer.hits("/feed.ics")
    assert len(hits) == 4  # the first try + TASK_MAX_RETRIES (3)
    gaps = _gaps(hits)
    assert gaps[0] >= 1.9  # Retry-After: 2 honoured
    assert all(gap < 2.0 + 1.5 for gap in gaps[1:])  # backoff capped at TASK_RETRY_BACKOFF_MAX
    assert failed.args == [channel.pk]
    channel.refresh_from_db()
    assert channel.status == ChannelStatus.ERROR
    assert channel.consecutive_failures == 4
    assert "HTTP 500" in channel.last_error
    assert_pipeline_settled()


def test_booking_changes_reach_the_push_api_in_order(
    live_worker, peer, alice, make_channel, future
):
    peer.routes["/availability"] = Reply(200, b"{}")
    channel = make_channel(
        name="API", kind=ChannelKind.PUSH_API, push_url=peer.url("/availability")
    )
    booking = booking_create(
        tenant=alice.tenant,
        property=alice.property,
        guest=alice.guest,
        check_in=future,
        check_out=future + timedelta(days=2),
    )
    booking = booking_modify(
        booking=booking, check_in=future + timedelta(days=1), check_out=future + timedelta(days=4)
    )
    booking_cancel(booking=booking)
    assert_pipeline_settled()
    wait_until(
        lambda: not ChannelUpdate.objects.filter(status=OutboundStatus.PENDING).exists(),
        30,
        what="updates sent",
    )
    bodies = [json.loads(seen.body) for seen in peer.hits("/availability")]
    sequences = [body["sequence"] for body in bodies]
    assert sequences == sorted(sequences) and sequences[-1] == 3
    assert bodies[-1]["available"] is True  # cancelled: the dates are free again
    statuses = dict(ChannelUpdate.objects.values_list("sequence", "status"))
    assert set(statuses) == {1, 2, 3}
    assert statuses[3] == OutboundStatus.SENT
    channel.refresh_from_db()
    assert channel.status == ChannelStatus.OK


def test_push_honours_429_then_backs_off_on_5xx_and_gives_up_for_review(
    live_worker, peer, alice, make_channel, future
):
    peer.routes["/availability"] = [Reply(429, headers={"Retry-After": "2"}), Reply(503)]
    channel = make_channel(
        name="API", kind=ChannelKind.PUSH_API, push_url=peer.url("/availability")
    )
    booking_create(
        tenant=alice.tenant,
        property=alice.property,
        guest=alice.guest,
        check_in=future,
        check_out=future + timedelta(days=2),
    )
    wait_until(
        lambda: FailedTask.objects.filter(task_name="channelsync.tasks.push_channel").exists(),
        40,
        what="the push to give up",
    )
    hits = peer.hits("/availability")
    assert len(hits) == 4
    assert _gaps(hits)[0] >= 1.9
    channel.refresh_from_db()
    assert channel.status == ChannelStatus.ERROR and "HTTP 503" in channel.last_error
    update = ChannelUpdate.objects.get(channel=channel)
    # Not lost: still pending, handed to the sweep after a longer pause.
    assert update.status == OutboundStatus.PENDING and update.attempts == 4
    assert update.next_attempt_at > timezone.now() + timedelta(seconds=200)
    assert_pipeline_settled()


def test_webhooks_are_tested_on_subscribe_then_signed_per_event(live_worker, peer, alice, future):
    secrets: dict[str, str] = {}

    def receiver(seen):
        ok = signature_valid(
            secret=secrets["secret"],
            timestamp=seen.headers["X-PMS-Timestamp"],
            body=seen.body,
            header=seen.headers["X-PMS-Signature"],
        )
        return Reply(200 if ok else 401)

    peer.routes["/hook"] = receiver
    subscription = webhook_subscription_create(
        tenant=alice.tenant, url=peer.url("/hook"), event_types=["booking.created"]
    )
    secrets["secret"] = subscription.secret
    booking = booking_create(
        tenant=alice.tenant,
        property=alice.property,
        guest=alice.guest,
        check_in=future,
        check_out=future + timedelta(days=2),
    )
    assert_pipeline_settled()
    wait_until(lambda: len(peer.hits("/hook")) == 2, 30, what="two webhook requests")
    types = [json.loads(seen.body)["type"] for seen in peer.hits("/hook")]
    assert sorted(types) == ["booking.created", "webhook.test"]
    event = DomainEvent.objects.get(aggregate_id=str(booking.pk), event_type="booking.created")
    ids = {seen.headers["X-PMS-Event-Id"] for seen in peer.hits("/hook")}
    assert str(event.id) in ids
    wait_until(
        lambda: (
            set(WebhookDelivery.objects.values_list("status", flat=True)) == {OutboundStatus.SENT}
        ),
        10,
        what="deliveries recorded as sent",
    )
