"""What we send is what the OpenAPI schema documents (x-webhooks): each request body a
loopback peer received validates against its documented schema, field for field."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import jsonschema
import pytest
from django.db import transaction

from channelsync.choices import ChannelKind
from channelsync.services import (
    channel_updates_push,
    channel_updates_record,
    webhook_deliveries_record,
    webhook_delivery_attempt,
    webhook_subscription_create,
)
from tests.support.http_peer import Reply

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(client):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return json.loads(response.content)


def _body_schema(schema, webhook):
    ref = schema["x-webhooks"][webhook]["post"]["requestBody"]["content"]["application/json"]
    name = ref["schema"]["$ref"].rsplit("/", 1)[-1]
    # Every documented field is required and nothing else is allowed: drift fails.
    resolved = {"components": schema["components"], **schema["components"]["schemas"][name]}

    def strict(node):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                node["additionalProperties"] = False
                node["required"] = sorted(node["properties"])
            for value in node.values():
                strict(value)
        elif isinstance(node, list):
            for value in node:
                strict(value)

    strict(resolved)
    return resolved


def _record(channel, available):
    channel_updates_record(
        channel=channel,
        event_id=uuid.uuid4(),
        aggregate_type="booking",
        aggregate_id="7",
        sequence=1 if not available else 2,
        payload={"start": "2030-01-01", "end": "2030-01-04", "available": available},
    )


def test_the_generic_push_body_is_the_documented_one(schema, make_channel, peer):
    peer.routes["/push"] = Reply(200, b"{}")
    channel = make_channel(
        name="API", kind=ChannelKind.PUSH_API, push_url=peer.url("/push"), push_listing_id="L-1"
    )
    _record(channel, available=False)
    assert channel_updates_push(channel_id=channel.pk)["sent"] == 1
    (seen,) = peer.hits("/push")
    jsonschema.validate(json.loads(seen.body), _body_schema(schema, "PushAvailabilityGeneric"))


def test_the_channex_bodies_are_the_documented_ones(schema, make_channel, peer, alice):
    alice.property.nightly_rate = Decimal("99.50")
    alice.property.save(update_fields=["nightly_rate"])
    peer.routes["/api/v1/availability"] = Reply(200, b"{}")
    peer.routes["/api/v1/restrictions"] = Reply(200, b"{}")
    channel = make_channel(
        name="Channex",
        kind=ChannelKind.PUSH_CHANNEX,
        push_url=peer.url("/"),
        push_listing_id="p/r/plan",
    )
    _record(channel, available=True)
    assert channel_updates_push(channel_id=channel.pk)["sent"] == 1
    (availability,) = peer.hits("/api/v1/availability")
    (rates,) = peer.hits("/api/v1/restrictions")
    jsonschema.validate(
        json.loads(availability.body), _body_schema(schema, "PushAvailabilityChannex")
    )
    jsonschema.validate(json.loads(rates.body), _body_schema(schema, "PushRatesChannex"))


def test_the_webhook_event_is_the_documented_one(schema, alice, peer):
    peer.routes["/hook"] = Reply(204)
    subscription = webhook_subscription_create(
        tenant=alice.tenant, url=peer.url("/hook"), event_types=["*"], send_test=False
    )
    with transaction.atomic():
        webhook_deliveries_record(
            tenant_id=alice.tenant.pk,
            event_id=uuid.uuid4(),
            event_type="booking.created",
            payload={"booking_id": 1},
        )
    delivery = subscription.deliveries.get()
    assert webhook_delivery_attempt(delivery_id=delivery.pk) == "delivered"
    (seen,) = peer.hits("/hook")
    jsonschema.validate(json.loads(seen.body), _body_schema(schema, "WebhookEvent"))
