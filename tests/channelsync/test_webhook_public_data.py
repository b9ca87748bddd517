"""The webhook body a tenant's receiver gets carries the documented public data of each
event type, never the internal event payload."""

from __future__ import annotations

import json
from datetime import timedelta

import jsonschema
import pytest

from bookings.services import block_upsert, booking_cancel, booking_create, booking_modify
from channelsync.handlers import record_outbound
from channelsync.models import WebhookDelivery
from channelsync.services import webhook_delivery_attempt, webhook_subscription_create
from pms.models import DomainEvent
from tests.support.http_peer import Reply

pytestmark = pytest.mark.django_db

INTERNAL_KEYS = {"aggregate_type", "aggregate_id", "external_uid"}


@pytest.fixture
def schema(client):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return json.loads(response.content)


def _documented(schema, webhook, optional=()):
    """The documented body: every field required except ``optional``, nothing else allowed."""
    ref = schema["x-webhooks"][webhook]["post"]["requestBody"]["content"]["application/json"]
    name = ref["schema"]["$ref"].rsplit("/", 1)[-1]
    resolved = {"components": schema["components"], **schema["components"]["schemas"][name]}

    def strict(node):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                node["additionalProperties"] = False
                node["required"] = sorted(set(node["properties"]) - set(optional))
            for value in node.values():
                strict(value)
        elif isinstance(node, list):
            for value in node:
                strict(value)

    strict(resolved)
    return resolved


def _sent_bodies(peer, subscription):
    for delivery in WebhookDelivery.objects.filter(subscription=subscription).order_by("pk"):
        assert webhook_delivery_attempt(delivery_id=delivery.pk) == "delivered"
    return [json.loads(seen.body) for seen in peer.hits("/hook")]


def test_booking_and_block_events_reach_receivers_in_their_documented_public_shape(
    schema, alice, peer, future
):
    peer.routes["/hook"] = Reply(204)
    subscription = webhook_subscription_create(
        tenant=alice.tenant, url=peer.url("/hook"), event_types=["*"], send_test=False
    )
    booking = booking_create(
        tenant=alice.tenant,
        property=alice.property,
        guest=alice.guest,
        check_in=future,
        check_out=future + timedelta(days=2),
    )
    booking = booking_modify(
        booking=booking, check_in=future + timedelta(days=1), check_out=future + timedelta(days=3)
    )
    booking_cancel(booking=booking, reason="plans changed")
    block_upsert(
        tenant=alice.tenant,
        property=alice.property,
        source="channel:7",
        external_uid="x@airbnb.com",
        start=future + timedelta(days=10),
        end=future + timedelta(days=12),
    )
    for event in DomainEvent.objects.order_by("created_at", "sequence"):
        record_outbound(event)

    bodies = {body["type"]: body for body in _sent_bodies(peer, subscription)}
    assert set(bodies) == {
        "booking.created",
        "booking.modified",
        "booking.cancelled",
        "block.created",
    }
    booking_schema = _documented(
        schema, "WebhookEventBooking", optional=("previous", "cancellation")
    )
    for kind in ("booking.created", "booking.modified", "booking.cancelled"):
        jsonschema.validate(bodies[kind], booking_schema)
        assert not INTERNAL_KEYS & set(bodies[kind]["data"])
    assert bodies["booking.modified"]["data"]["previous"]["check_in"] == future.isoformat()
    assert bodies["booking.cancelled"]["data"]["cancellation"]["reason"] == "plans changed"
    assert "previous" not in bodies["booking.created"]["data"]

    jsonschema.validate(bodies["block.created"], _documented(schema, "WebhookEventBlock"))
    block = bodies["block.created"]["data"]
    assert block["channel_id"] == 7 and not INTERNAL_KEYS & set(block)


def test_the_test_delivery_is_in_its_documented_shape(schema, alice, peer):
    peer.routes["/hook"] = Reply(204)
    subscription = webhook_subscription_create(
        tenant=alice.tenant, url=peer.url("/hook"), event_types=["*"]
    )
    (body,) = _sent_bodies(peer, subscription)
    jsonschema.validate(body, _documented(schema, "WebhookEventTest"))
    assert body["data"]["subscription_id"] == subscription.pk
