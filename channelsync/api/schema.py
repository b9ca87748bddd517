"""What we send out, in the OpenAPI schema: push-channel requests and webhook events.

These are requests *we* make to a URL the tenant configures, so they are documented
as OpenAPI webhooks (under ``x-webhooks``: the schema is OpenAPI 3.0, where the 3.1
``webhooks`` key does not exist yet; ReDoc and most generators read ``x-webhooks``).
``add_outbound_requests`` is a drf-spectacular postprocessing hook.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.plumbing import process_webhooks
from drf_spectacular.utils import OpenApiWebhook, extend_schema
from rest_framework import serializers


class GenericPushUpdateSerializer(serializers.Serializer):
    listing_id = serializers.CharField(
        help_text="The channel's listing id (push_listing_id), else our property id."
    )
    update_id = serializers.IntegerField(help_text="Our id of this update.")
    event_id = serializers.UUIDField(help_text="Also the Idempotency-Key header.")
    reservation = serializers.CharField(help_text='"booking:<id>" or "block:<id>".')
    sequence = serializers.IntegerField(
        help_text="Grows with each change of that reservation: ignore a lower one than seen."
    )
    start = serializers.DateField(help_text="First night (property-local).")
    end = serializers.DateField(help_text="Check-out day: exclusive.")
    available = serializers.BooleanField(
        help_text="False: the nights are taken; true: they are free again (cancelled, moved)."
    )


class ChannexAvailabilityValueSerializer(serializers.Serializer):
    property_id = serializers.CharField()
    room_type_id = serializers.CharField()
    date_from = serializers.DateField(help_text="First night.")
    date_to = serializers.DateField(help_text="Last night (inclusive).")
    availability = serializers.IntegerField(min_value=0, max_value=1)


class ChannexAvailabilitySerializer(serializers.Serializer):
    values = ChannexAvailabilityValueSerializer(many=True)


class ChannexRateValueSerializer(serializers.Serializer):
    property_id = serializers.CharField()
    rate_plan_id = serializers.CharField()
    date_from = serializers.DateField(help_text="First night.")
    date_to = serializers.DateField(help_text="Last night (inclusive).")
    rate = serializers.DecimalField(max_digits=10, decimal_places=2, coerce_to_string=True)


class ChannexRestrictionsSerializer(serializers.Serializer):
    values = ChannexRateValueSerializer(many=True)


class WebhookEventSerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="The event id (also webhook-id): de-duplicate on it.")
    type = serializers.CharField(help_text='e.g. "booking.created"; "webhook.test" on subscribing.')
    created_at = serializers.DateTimeField()
    data = serializers.DictField(help_text="The event's payload.")


# (OpenAPI webhooks carry no header parameters here: the headers are in the descriptions.)
IDEMPOTENCY = " Header Idempotency-Key: the update's event id, the same on every retry."
ANSWERS = {200: None, 204: None}

OUTBOUND_REQUESTS = [
    OpenApiWebhook(
        name="PushAvailabilityGeneric",
        decorator=extend_schema(
            summary="Push channel (generic JSON): one availability update",
            description=(
                "POSTed to the channel's push_url, oldest first, full state per reservation. "
                "Authorization: Bearer <push_api_key> when a key is set. A 2xx accepts it; "
                "429/5xx are retried (Retry-After honoured); 401/403 pause the channel; "
                "another 4xx gives this update up." + IDEMPOTENCY
            ),
            request=GenericPushUpdateSerializer,
            responses=ANSWERS,
        ),
    ),
    OpenApiWebhook(
        name="PushAvailabilityChannex",
        decorator=extend_schema(
            summary="Push channel (Channex ARI): POST {push_url}/api/v1/availability",
            description=(
                "Header user-api-key: <push_api_key>. 0 closes the nights, 1 opens them."
                + IDEMPOTENCY
            ),
            request=ChannexAvailabilitySerializer,
            responses=ANSWERS,
        ),
    ),
    OpenApiWebhook(
        name="PushRatesChannex",
        decorator=extend_schema(
            summary="Push channel (Channex ARI): POST {push_url}/api/v1/restrictions",
            description=(
                "Sent after the availability request when nights are freed and the listing "
                "id names a rate plan: the property's nightly rate for those nights." + IDEMPOTENCY
            ),
            request=ChannexRestrictionsSerializer,
            responses=ANSWERS,
        ),
    ),
    OpenApiWebhook(
        name="WebhookEvent",
        decorator=extend_schema(
            summary="Webhook subscription: one event (Standard Webhooks)",
            description=(
                "Headers: webhook-id (the event id, the same on every retry), "
                "webhook-timestamp (Unix seconds; reject one over 5 minutes off), "
                "webhook-signature (v1,<base64 HMAC-SHA256(key, '{id}.{timestamp}.{body}')>, "
                "the key being the base64 part of the subscription's whsec_ secret): verify "
                "with any Standard Webhooks library. X-PMS-Timestamp and X-PMS-Signature "
                "(v1=<hex>) are deprecated and sent for one more release."
            ),
            request=WebhookEventSerializer,
            responses=ANSWERS,
        ),
    ),
]


def add_outbound_requests(
    result: dict[str, Any], generator: Any, request: Any, public: Any
) -> dict[str, Any]:
    webhooks = process_webhooks(OUTBOUND_REQUESTS, generator.registry)
    schemas = generator.registry.build({}).get("schemas", {})
    result.setdefault("components", {}).setdefault("schemas", {}).update(schemas)
    result["x-webhooks"] = webhooks
    return result
