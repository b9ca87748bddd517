"""Requests to tenants' receivers on a real worker: a hanging receiver costs its own tenant.

The session worker has two processes and the tests run with one request per endpoint at
a time (``FAIR_INFLIGHT_PER_ENDPOINT=1``), circuits opening after 3 failures for 2 s
(pyproject's pytest env): the same arithmetic as production's 6 outbound processes and
2 per endpoint, at test scale.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from itertools import pairwise

import pytest

from channelsync.choices import ChannelKind, OutboundStatus
from channelsync.models import ChannelUpdate, WebhookDelivery
from channelsync.services import webhook_subscription_create
from pms.models import EndpointCircuit, FairWorkItem
from pms.pipeline.endpoints import endpoint_lane
from testkit.processes import wait_until
from tests.support.http_peer import HttpPeer, Reply
from tests.support.pipeline import assert_pipeline_settled
from tests.support.stays import book_stay

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

HANG = 2.0  # seconds the slow receiver takes per request


def _overlapping(hits, seconds):
    """How many requests overlapped in time (each took ``seconds``)."""
    starts = sorted(seen.at for seen in hits)
    return sum(1 for earlier, later in pairwise(starts) if later - earlier < seconds * 0.8)


def test_a_hanging_webhook_receiver_holds_one_worker_and_the_other_tenant_is_served(
    live_worker, peer, alice, bob, future
):
    peer.routes["/hook"] = Reply(200)
    with HttpPeer() as slow:
        slow.routes["/hook"] = Reply(200, delay=HANG)
        webhook_subscription_create(
            tenant=alice.tenant,
            url=slow.url("/hook"),
            event_types=["booking.created"],
            send_test=False,
        )
        webhook_subscription_create(
            tenant=bob.tenant,
            url=peer.url("/hook"),
            event_types=["booking.created"],
            send_test=False,
        )
        for offset in range(4):
            book_stay(alice, future + timedelta(days=3 * offset), nights=1)
        wait_until(lambda: len(slow.hits("/hook")) >= 1, 20, what="A's first slow request")
        booked = time.monotonic()
        book_stay(bob, future, nights=1)
        wait_until(lambda: len(peer.hits("/hook")) == 1, 20, what="B's webhook")
        b_latency = peer.hits("/hook")[0].at - booked
        a_pending = WebhookDelivery.objects.filter(
            tenant=alice.tenant, status=OutboundStatus.PENDING
        ).count()
        # B's delivery did not wait for A's receiver: A still has most of its queue.
        assert b_latency < HANG, b_latency
        assert a_pending >= 3, a_pending
        wait_until(
            lambda: not WebhookDelivery.objects.filter(status=OutboundStatus.PENDING).exists(),
            60,
            what="A's slow deliveries, one at a time",
        )
        # A progressed, one request at a time to its receiver (its lane's cap).
        assert len(slow.hits("/hook")) == 4
        assert _overlapping(slow.hits("/hook"), HANG) == 0
    assert_pipeline_settled()


def test_a_failing_receivers_circuit_opens_defers_its_work_then_a_probe_closes_it(
    live_worker, alice, future
):
    with HttpPeer() as receiver:
        receiver.routes["/hook"] = Reply(503)
        subscription = webhook_subscription_create(
            tenant=alice.tenant,
            url=receiver.url("/hook"),
            event_types=["booking.created"],
            send_test=False,
        )
        for offset in range(6):
            book_stay(alice, future + timedelta(days=3 * offset), nights=1)
        lane = endpoint_lane(subscription.url)
        # Each booking's delivery is written by its own handler run: wait for all six, so
        # the ones the open circuit holds back exist before they are counted.
        wait_until(
            lambda: WebhookDelivery.objects.filter(subscription=subscription).count() == 6,
            30,
            what="the six deliveries written",
        )
        wait_until(
            lambda: EndpointCircuit.objects.filter(lane=lane, open_until__isnull=False).exists(),
            30,
            what="the circuit to open after 3 failures",
        )
        # The circuit is recorded as the third request fails; its delivery's outcome a
        # moment later.
        wait_until(
            lambda: WebhookDelivery.objects.filter(attempts__gt=0).count() >= 3,
            10,
            what="the three failed attempts recorded",
        )
        failed_attempts = len(receiver.hits("/hook"))
        assert failed_attempts == 3
        # While open, the rest waits as deferred fair work: pending, never attempted.
        never_tried = WebhookDelivery.objects.filter(
            subscription=subscription, status=OutboundStatus.PENDING, attempts=0
        )
        assert never_tried.count() == 3
        assert FairWorkItem.objects.filter(lane=lane, finished_at__isnull=True).exists()
        receiver.routes["/hook"] = Reply(200)  # the receiver is fixed
        # After the 2 s cooldown one probe goes; its success closes the circuit and the
        # deferred deliveries follow. (The 3 that failed retry on their own schedule.)
        wait_until(lambda: not never_tried.exists(), 30, what="the deferred deliveries")
        circuit = EndpointCircuit.objects.get(lane=lane)
        assert (circuit.state, circuit.consecutive_failures) == ("closed", 0)
        assert all(
            json.loads(seen.body)["type"] == "booking.created" for seen in receiver.hits("/hook")
        )


def test_a_hanging_push_endpoint_does_not_hold_another_tenants_push(
    live_worker, peer, alice, bob, future, make_channel
):
    peer.routes["/availability"] = Reply(200, b"{}")
    with HttpPeer() as slow:
        slow.routes["/availability"] = Reply(200, b"{}", delay=HANG)
        make_channel(
            alice, name="A API", kind=ChannelKind.PUSH_API, push_url=slow.url("/availability")
        )
        make_channel(
            bob, name="B API", kind=ChannelKind.PUSH_API, push_url=peer.url("/availability")
        )
        for offset in range(3):
            book_stay(alice, future + timedelta(days=3 * offset), nights=1)
        wait_until(lambda: len(slow.hits("/availability")) >= 1, 20, what="A's first push")
        booked = time.monotonic()
        book_stay(bob, future, nights=1)
        wait_until(lambda: len(peer.hits("/availability")) == 1, 20, what="B's push")
        assert peer.hits("/availability")[0].at - booked < HANG
        wait_until(
            lambda: not ChannelUpdate.objects.filter(status=OutboundStatus.PENDING).exists(),
            60,
            what="A's pushes",
        )
    assert_pipeline_settled()
