"""What we send out, in the OpenAPI schema: push-channel requests and webhook events.

Webhook bodies carry the public ``data`` of each event type (built by
``channelsync.services.webhook_events``; its docstring lists the fields), never the
internal event payload.

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

# A field named like a Field/Serializer attribute (source, label, data) is what the wire
# format says; DRF's metaclass pops declared fields off the class, so nothing is shadowed
# at run time, but the stubs see an attribute of another type: hence the ignores below.


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


# The public ``data`` of each event type, as channelsync.services.webhook_events builds it.
class BookingWebhookStateSerializer(serializers.Serializer):
    booking_id = serializers.IntegerField()
    reference = serializers.CharField()
    property_id = serializers.IntegerField()
    guest_id = serializers.IntegerField()
    check_in = serializers.DateField(help_text="First night (property-local).")
    check_out = serializers.DateField(help_text="Check-out day: exclusive.")
    status = serializers.CharField(
        help_text="pending, confirmed, cancelled, checked_in, checked_out or no_show."
    )
    guests_count = serializers.IntegerField()
    accommodation_amount = serializers.DecimalField(max_digits=12, decimal_places=2)
    cleaning_amount = serializers.DecimalField(max_digits=12, decimal_places=2)
    tax_amount = serializers.DecimalField(max_digits=12, decimal_places=2)
    total = serializers.DecimalField(max_digits=12, decimal_places=2)
    currency = serializers.CharField(help_text="ISO 4217, e.g. EUR.")
    source = serializers.CharField(  # type: ignore[assignment]
        help_text="Where the booking came from: direct, admin, airbnb, booking_com, vrbo, other."
    )


class BookingCancellationSerializer(serializers.Serializer):
    policy = serializers.CharField(help_text="The property's cancellation policy.")
    days_before = serializers.IntegerField(help_text="Days between the cancellation and check-in.")
    refund_percent = serializers.IntegerField()
    fee = serializers.DecimalField(max_digits=12, decimal_places=2)
    reason = serializers.CharField(allow_blank=True)


class BookingWebhookDataSerializer(BookingWebhookStateSerializer):
    sequence = serializers.IntegerField(
        help_text="Grows with each change of the booking: ignore an event with a lower one."
    )
    previous = BookingWebhookStateSerializer(
        required=False, help_text="booking.modified only: the booking before the change."
    )
    cancellation = BookingCancellationSerializer(
        required=False, help_text="booking.cancelled only: the terms fixed at cancellation."
    )


class BlockWebhookDataSerializer(serializers.Serializer):
    block_id = serializers.IntegerField()
    property_id = serializers.IntegerField()
    start = serializers.DateField(help_text="First night (property-local).")
    end = serializers.DateField(help_text="Exclusive.")
    label = serializers.CharField(allow_blank=True)  # type: ignore[assignment]
    is_active = serializers.BooleanField(help_text="False once the block is cancelled.")
    channel_id = serializers.IntegerField(
        allow_null=True, help_text="The channel that imported the block; null: made by hand."
    )
    sequence = serializers.IntegerField(
        help_text="Grows with each change of the block: ignore an event with a lower one."
    )


class WebhookTestDataSerializer(serializers.Serializer):
    message = serializers.CharField()
    subscription_id = serializers.IntegerField()


class WebhookEventSerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="The event id (also webhook-id): de-duplicate on it.")
    type = serializers.CharField(help_text='e.g. "booking.created"; "webhook.test" on subscribing.')
    created_at = serializers.DateTimeField()
    data = serializers.DictField(  # type: ignore[assignment]
        help_text=(
            "The event's public data, by type: booking.* BookingWebhookData, block.* "
            "BlockWebhookData, webhook.test WebhookTestData (see WebhookEventBooking, "
            "WebhookEventBlock, WebhookEventTest). Never the internal event payload: "
            "fields may be added, none is removed or renamed without notice."
        )
    )


class BookingWebhookEventSerializer(WebhookEventSerializer):
    data = BookingWebhookDataSerializer()  # type: ignore[assignment]


class BlockWebhookEventSerializer(WebhookEventSerializer):
    data = BlockWebhookDataSerializer()  # type: ignore[assignment]


class WebhookTestEventSerializer(WebhookEventSerializer):
    data = WebhookTestDataSerializer()  # type: ignore[assignment]


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
    *(
        OpenApiWebhook(
            name=name,
            decorator=extend_schema(
                summary=f"Webhook subscription: {what}",
                description="The same request as WebhookEvent, with this type's data.",
                request=serializer,
                responses=ANSWERS,
            ),
        )
        for name, what, serializer in [
            ("WebhookEventBooking", "booking.* events", BookingWebhookEventSerializer),
            ("WebhookEventBlock", "block.* events", BlockWebhookEventSerializer),
            ("WebhookEventTest", "webhook.test", WebhookTestEventSerializer),
        ]
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
