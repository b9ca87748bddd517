"""Push updates and webhooks without a worker: ordering, staleness, signatures, retries,
auto-disable, the shared token bucket across processes, and stale-channel alerts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import transaction
from django.utils import timezone

from channelsync.choices import ChannelKind, ChannelStatus, OutboundStatus
from channelsync.models import Channel, ChannelUpdate, WebhookDelivery
from channelsync.services import channel_updates_push, channel_updates_record
from channelsync.services.webhooks import (
    signature_valid,
    webhook_deliveries_record,
    webhook_delivery_attempt,
    webhook_subscription_create,
)
from channelsync.tasks import alert_stale_channel, alert_webhook_disabled, check_stale_channels
from pms.models import FairWorkItem
from tests.support.http_peer import Reply

pytestmark = pytest.mark.django_db


@pytest.fixture
def push_channel(make_channel, peer):
    peer.routes["/availability"] = Reply(200, b"{}")
    return make_channel(
        name="API",
        kind=ChannelKind.PUSH_API,
        push_url=peer.url("/availability"),
        push_listing_id="L-1",
        rate_limit_per_second=50,
        rate_limit_burst=50,
    )


def _update(channel, sequence, aggregate_id="7", available=False):
    channel_updates_record(
        channel=channel,
        event_id=uuid.uuid4(),
        aggregate_type="booking",
        aggregate_id=aggregate_id,
        sequence=sequence,
        payload={"start": "2030-01-01", "end": "2030-01-03", "available": available},
    )


def test_a_stale_update_never_overwrites_a_newer_one(push_channel, peer):
    _update(push_channel, 2, available=True)
    _update(push_channel, 1)  # the older event's handler ran last
    _update(push_channel, 1, aggregate_id="8")
    counts = channel_updates_push(channel_id=push_channel.pk)
    assert counts["sent"] == 2 and counts["superseded"] == 1
    sent = [json.loads(s.body) for s in peer.hits("/availability")]
    assert [(b["reservation"], b["sequence"]) for b in sent] == [("booking:7", 2), ("booking:8", 1)]
    assert sent[0]["listing_id"] == "L-1" and sent[0]["available"] is True
    assert peer.hits("/availability")[0].headers["Idempotency-Key"] == sent[0]["event_id"]

    _update(push_channel, 1)  # a late duplicate of an old event, after the newer was sent
    assert channel_updates_push(channel_id=push_channel.pk)["superseded"] == 1
    assert len(peer.hits("/availability")) == 2


def test_a_rejected_update_is_given_up_and_the_next_is_sent(push_channel, peer):
    peer.routes["/availability"] = [Reply(400, b"bad listing"), Reply(200)]
    _update(push_channel, 1, aggregate_id="1")
    _update(push_channel, 1, aggregate_id="2")
    counts = channel_updates_push(channel_id=push_channel.pk)
    assert (counts["failed"], counts["sent"]) == (1, 1)
    push_channel.refresh_from_db()
    assert ChannelUpdate.objects.filter(status=OutboundStatus.FAILED).count() == 1


RATE_SCRIPT = """
import json, os, sys, time
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()
from channelsync.feeds.fetch import safe_request
from channelsync.feeds.ratelimit import token_acquire
key, url, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
for _ in range(count):
    while token_acquire(key=key, rate=5, burst=2, max_wait=5):
        pass
    safe_request("POST", url, data=b"{}")
"""


def test_the_token_bucket_holds_across_two_processes(peer):
    peer.routes["/limited"] = Reply(200)
    key = f"test-{uuid.uuid4().hex}"
    root = Path(__file__).resolve().parents[2]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", RATE_SCRIPT, key, peer.url("/limited"), "6"],
            cwd=root,
            env={**os.environ},
        )
        for _ in range(2)
    ]
    for process in processes:
        assert process.wait(60) == 0
    arrivals = sorted(seen.at for seen in peer.hits("/limited"))
    assert len(arrivals) == 12
    # rate 5/s with a burst of 2: in any 1-second window at most 2 + 5 requests,
    # and 12 requests take at least (12 - 2) / 5 = 2 seconds.
    assert arrivals[-1] - arrivals[0] >= 1.9
    for i, start in enumerate(arrivals):
        in_window = [t for t in arrivals[i:] if t - start < 1.0]
        assert len(in_window) <= 7, arrivals


# --- Webhooks ------------------------------------------------------------------------------


@pytest.fixture
def subscription(alice, peer):
    return webhook_subscription_create(
        tenant=alice.tenant, url=peer.url("/hook"), event_types=["booking.created"], send_test=False
    )


def _delivery(subscription, event_type="booking.created"):
    with transaction.atomic():
        webhook_deliveries_record(
            tenant_id=subscription.tenant_id,
            event_id=uuid.uuid4(),
            event_type=event_type,
            payload={"booking_id": 1},
        )
    return WebhookDelivery.objects.filter(subscription=subscription).order_by("-pk").first()


def _make_due(delivery):
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())


def test_only_subscribed_event_types_are_delivered(subscription):
    assert _delivery(subscription, "block.created") is None
    assert _delivery(subscription).event_type == "booking.created"


def test_deliveries_are_signed_and_carry_the_event_id(subscription, peer):
    def receiver(seen):
        ok = signature_valid(
            secret=subscription.secret,
            timestamp=seen.headers["X-PMS-Timestamp"],
            body=seen.body,
            header=seen.headers["X-PMS-Signature"],
        )
        return Reply(204 if ok else 401)

    peer.routes["/hook"] = receiver
    delivery = _delivery(subscription)
    assert webhook_delivery_attempt(delivery_id=delivery.pk) == "delivered"
    (seen,) = peer.hits("/hook")
    assert seen.headers["X-PMS-Event-Id"] == str(delivery.event_id)
    assert json.loads(seen.body)["id"] == str(delivery.event_id)
    delivery.refresh_from_db()
    assert delivery.status == OutboundStatus.SENT and delivery.last_status_code == 204

    # A receiver holding another secret rejects it: that is a failed attempt.
    subscription.secret = "someone-elses-secret"
    subscription.save(update_fields=["secret"])
    peer.routes["/hook"] = lambda seen: Reply(
        204
        if signature_valid(
            secret="the-receivers-secret",
            timestamp=seen.headers["X-PMS-Timestamp"],
            body=seen.body,
            header=seen.headers["X-PMS-Signature"],
        )
        else 401
    )
    other = _delivery(subscription)
    assert webhook_delivery_attempt(delivery_id=other.pk) == "failed"
    other.refresh_from_db()
    assert other.last_status_code == 401 and other.status == OutboundStatus.PENDING


def test_retries_follow_the_schedule_then_the_subscription_is_disabled_once(
    settings, subscription, peer, mailoutbox, alice
):
    settings.WEBHOOK_RETRY_SCHEDULE = [60, 600, 3600, 7200]
    settings.WEBHOOK_DISABLE_AFTER_FAILURES = 3
    settings.WEBHOOK_DISABLE_AFTER_SECONDS = 0  # the time window has its own tests
    peer.routes["/hook"] = Reply(500)
    delivery = _delivery(subscription)
    started = timezone.now()
    assert webhook_delivery_attempt(delivery_id=delivery.pk) == "failed"
    delivery.refresh_from_db()
    assert started + timedelta(seconds=59) < delivery.next_attempt_at
    assert delivery.next_attempt_at < timezone.now() + timedelta(seconds=61)
    # Not due yet: nothing is sent.
    assert webhook_delivery_attempt(delivery_id=delivery.pk) == "not-due"
    assert len(peer.hits("/hook")) == 1

    _make_due(delivery)
    assert webhook_delivery_attempt(delivery_id=delivery.pk) == "failed"
    delivery.refresh_from_db()
    assert delivery.next_attempt_at > timezone.now() + timedelta(seconds=590)
    _make_due(delivery)
    assert webhook_delivery_attempt(delivery_id=delivery.pk) == "disabled"
    subscription.refresh_from_db()
    assert not subscription.is_active and subscription.consecutive_failures == 3
    hits = peer.hits("/hook")
    assert len({h.headers["X-PMS-Event-Id"] for h in hits}) == 1  # same id: receivers dedupe
    assert [h.headers["X-PMS-Delivery-Attempt"] for h in hits] == ["1", "2", "3"]

    # A disabled subscription gets no more attempts.
    _make_due(delivery)
    assert webhook_delivery_attempt(delivery_id=delivery.pk) == "not-due"
    assert len(peer.hits("/hook")) == 3

    assert alert_webhook_disabled(subscription.pk) is True
    assert alert_webhook_disabled(subscription.pk) is False
    assert len(mailoutbox) == 1 and mailoutbox[0].to == [alice.manager.email]
    assert peer.url("/hook") in mailoutbox[0].body


def test_a_success_resets_the_failure_count(subscription, peer):
    peer.routes["/hook"] = [Reply(503), Reply(200)]
    delivery = _delivery(subscription)
    webhook_delivery_attempt(delivery_id=delivery.pk)
    _make_due(delivery)
    assert webhook_delivery_attempt(delivery_id=delivery.pk) == "delivered"
    subscription.refresh_from_db()
    assert subscription.consecutive_failures == 0 and subscription.is_active


# --- Stale channels ------------------------------------------------------------------------


def test_a_stale_channel_alerts_the_manager_once(make_channel, mailoutbox, alice):
    fresh = make_channel(name="fresh", import_url="https://example.com/a.ics")
    stale = make_channel(name="stale", import_url="https://example.com/b.ics")
    now = timezone.now()
    Channel.objects.filter(pk=fresh.pk).update(last_success_at=now - timedelta(minutes=20))
    Channel.objects.filter(pk=stale.pk).update(
        last_success_at=now - timedelta(minutes=46), last_error="fetch: HTTP 503"
    )
    assert check_stale_channels() == 1  # one alert submitted: its task claims and mails
    assert alert_stale_channel(stale.pk) is True
    assert alert_stale_channel(stale.pk) is False  # a repeat of the message claims nothing
    assert check_stale_channels() == 0
    assert len(mailoutbox) == 1 and "stale" in mailoutbox[0].subject
    stale.refresh_from_db()
    assert stale.status == ChannelStatus.STALE


def test_operator_monitoring_sees_channel_health(make_channel):
    from pms.monitoring.channels import channel_health

    stale = make_channel(name="stale", import_url="https://example.com/b.ics")
    Channel.objects.filter(pk=stale.pk).update(
        last_success_at=timezone.now() - timedelta(hours=1), consecutive_failures=3
    )
    make_channel(name="fresh", import_url="https://example.com/a.ics")
    healths = channel_health()
    assert healths is not None
    report = {health.name: health for health in healths}
    assert report["stale"].stale and report["stale"].consecutive_failures == 3
    assert not report["fresh"].stale


def test_the_sweep_finds_overdue_heads_and_deliveries(settings, push_channel, subscription):
    from channelsync.services import channel_updates_due_channels, webhook_deliveries_due

    _update(push_channel, 1)
    delivery = _delivery(subscription)
    grace = timedelta(seconds=60)
    assert channel_updates_due_channels(grace=grace) == []  # just written: the task is on it
    ChannelUpdate.objects.update(next_attempt_at=timezone.now() - timedelta(minutes=5))
    head = ChannelUpdate.objects.get()
    assert channel_updates_due_channels(grace=grace) == [(push_channel.pk, head.pk)]
    # Its attempt still waits as fair work: promised, not lost, so not the sweep's.
    assert webhook_deliveries_due() == []
    FairWorkItem.objects.update(finished_at=timezone.now())  # that attempt ran and failed
    assert webhook_deliveries_due() == [delivery.pk]
    WebhookDelivery.objects.update(next_attempt_at=timezone.now() + timedelta(hours=1))
    assert webhook_deliveries_due() == []


# --- Review fixes: outages, pauses, budgets, alerts ------------------------------------------


def test_a_short_outage_during_a_burst_does_not_disable_the_subscription(
    settings, subscription, peer
):
    settings.WEBHOOK_DISABLE_AFTER_FAILURES = 3
    settings.WEBHOOK_DISABLE_AFTER_SECONDS = 600
    peer.routes["/hook"] = Reply(503)
    burst = [_delivery(subscription) for _ in range(6)]
    assert [webhook_delivery_attempt(delivery_id=d.pk) for d in burst] == ["failed"] * 6
    subscription.refresh_from_db()
    assert subscription.is_active and subscription.consecutive_failures == 6
    peer.routes["/hook"] = Reply(200)  # back after a minute
    for delivery in burst:
        _make_due(delivery)
        assert webhook_delivery_attempt(delivery_id=delivery.pk) == "delivered"
    subscription.refresh_from_db()
    assert subscription.consecutive_failures == 0 and subscription.failing_since is None


def test_a_disabled_subscription_holds_its_deliveries_and_enabling_sends_them(
    settings, subscription, peer, django_capture_on_commit_callbacks
):
    from channelsync.models import WebhookSubscription
    from channelsync.services import webhook_deliveries_due, webhook_subscription_enable

    settings.WEBHOOK_DISABLE_AFTER_FAILURES = 2
    settings.WEBHOOK_DISABLE_AFTER_SECONDS = 600
    peer.routes["/hook"] = Reply(503)
    first, *held = [_delivery(subscription) for _ in range(3)]
    assert webhook_delivery_attempt(delivery_id=first.pk) == "failed"
    # The failures have lasted long enough now.
    WebhookSubscription.objects.filter(pk=subscription.pk).update(
        failing_since=timezone.now() - timedelta(minutes=11)
    )
    _make_due(first)
    assert webhook_delivery_attempt(delivery_id=first.pk) == "disabled"
    for delivery in held:
        assert webhook_delivery_attempt(delivery_id=delivery.pk) == "not-due"
        delivery.refresh_from_db()
        assert delivery.status == OutboundStatus.PENDING and delivery.attempts == 0
    FairWorkItem.objects.update(finished_at=timezone.now())  # their attempts have run
    assert webhook_deliveries_due() == []  # the sweep leaves held rows alone
    assert len(peer.hits("/hook")) == 2

    peer.routes["/hook"] = Reply(200)
    with django_capture_on_commit_callbacks() as callbacks:
        assert webhook_subscription_enable(subscription=subscription) == 3
    # Each re-opened delivery gets an attempt, as fair work committed with the re-opening.
    assert len(callbacks) == 1  # one dispatcher kick for the batch
    reopened = FairWorkItem.objects.filter(scope="webhooks", finished_at__isnull=True)
    assert sorted(reopened.values_list("args", flat=True)) == sorted(
        [[d.pk] for d in [first, *held]]
    )
    for delivery in [first, *held]:
        assert webhook_delivery_attempt(delivery_id=delivery.pk) == "delivered"
    assert WebhookDelivery.objects.filter(status=OutboundStatus.SENT).count() == 3


def test_the_sweep_leaves_fresh_deliveries_to_their_own_task(subscription):
    from channelsync.services import webhook_deliveries_due

    delivery = _delivery(subscription)
    grace = timedelta(seconds=60)
    assert webhook_deliveries_due(grace=grace) == []
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=61)
    )
    # Overdue, but its attempt still waits as fair work (its tenant's turn, or an open
    # circuit): not lost, so not submitted twice.
    assert webhook_deliveries_due(grace=grace) == []
    FairWorkItem.objects.update(finished_at=timezone.now())
    assert webhook_deliveries_due(grace=grace) == [delivery.pk]


def test_a_big_backlog_is_pushed_in_bounded_runs(settings, push_channel, peer):
    settings.CHANNEL_PUSH_RUN_MAX_UPDATES = 3
    for aggregate_id in range(7):
        _update(push_channel, 1, aggregate_id=str(aggregate_id))
    runs = []
    while True:
        counts = channel_updates_push(channel_id=push_channel.pk)
        runs.append(counts["sent"])
        if not counts["more"]:
            break
    assert runs == [3, 3, 1]
    assert len(peer.hits("/availability")) == 7

    settings.CHANNEL_PUSH_RUN_MAX_UPDATES = 1000
    settings.CHANNEL_PUSH_RUN_SECONDS = 0  # the time budget: one update, then hand over
    _update(push_channel, 1, aggregate_id="a")
    _update(push_channel, 1, aggregate_id="b")
    counts = channel_updates_push(channel_id=push_channel.pk)
    assert (counts["sent"], counts["more"]) == (0, 1)


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_credentials_pause_the_channel_and_keep_the_updates(
    status, push_channel, peer, django_capture_on_commit_callbacks
):
    from channelsync.services import channel_resume

    peer.routes["/availability"] = Reply(status, b"bad key")
    for aggregate_id in range(3):
        _update(push_channel, 1, aggregate_id=str(aggregate_id))
    counts = channel_updates_push(channel_id=push_channel.pk)
    assert counts["paused"] == 1 and counts["failed"] == 0
    push_channel.refresh_from_db()
    assert push_channel.is_paused and push_channel.status == ChannelStatus.PAUSED
    assert f"HTTP {status}" in push_channel.last_error
    assert ChannelUpdate.objects.filter(status=OutboundStatus.PENDING).count() == 3
    assert len(peer.hits("/availability")) == 1

    peer.routes["/availability"] = Reply(200)  # the key was fixed
    with django_capture_on_commit_callbacks() as callbacks:
        channel_resume(channel=push_channel)
    assert len(callbacks) == 1  # resuming enqueues a push
    assert channel_updates_push(channel_id=push_channel.pk)["sent"] == 3


def test_changes_while_a_push_channel_is_paused_are_recorded_for_the_resume(
    alice, push_channel, peer, future
):
    from bookings.services import booking_create
    from channelsync.handlers import record_outbound
    from channelsync.services import channel_pause, channel_resume
    from pms.models import DomainEvent

    channel_pause(channel=push_channel)
    booking_create(
        tenant=alice.tenant,
        property=alice.property,
        guest=alice.guest,
        check_in=future,
        check_out=future + timedelta(days=2),
    )
    record_outbound(DomainEvent.objects.get(event_type="booking.created"))
    update = ChannelUpdate.objects.get(channel=push_channel)
    assert update.status == OutboundStatus.PENDING
    assert channel_updates_push(channel_id=push_channel.pk)["sent"] == 0  # paused: nothing sent
    channel_resume(channel=push_channel)
    assert channel_updates_push(channel_id=push_channel.pk)["sent"] == 1
    (seen,) = peer.hits("/availability")
    assert json.loads(seen.body)["available"] is False


def test_one_failing_stale_alert_does_not_lose_the_others(
    settings, make_channel, alice, flaky_smtp
):
    import smtplib

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", flaky_smtp.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    long_ago = timezone.now() - timedelta(hours=2)
    channels = [
        make_channel(name=f"stale {index}", import_url=f"https://example.com/{index}.ics")
        for index in range(3)
    ]
    Channel.objects.update(last_success_at=long_ago)
    flaky_smtp.fail_next = 1
    assert check_stale_channels() == 3  # one alert task each
    first, *others = channels
    with pytest.raises(smtplib.SMTPException):
        alert_stale_channel(first.pk)  # raised so its task retries
    assert [alert_stale_channel(channel.pk) for channel in others] == [True, True]
    assert len(flaky_smtp.messages) == 2
    assert list(Channel.objects.filter(stale_alerted_at__isnull=True)) == [first]
    assert check_stale_channels() == 1  # still unalerted: submitted again
    assert alert_stale_channel(first.pk) is True  # the retry sends the one that failed
    assert len(flaky_smtp.messages) == 3
    subjects = sorted(
        m["data"].split("Subject: ", 1)[1].split("\n", 1)[0] for m in flaky_smtp.messages
    )
    assert [c.name in " ".join(subjects) for c in channels] == [True, True, True]
