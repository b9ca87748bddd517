"""Event handlers of channel sync: DB-only, inside the delivery transaction.

One handler writes the outbound outbox rows for an event: a ChannelUpdate per
push channel of the property and a WebhookDelivery per interested webhook
subscription, and the fair work item that sends each (pms.pipeline.fairness),
all in the delivery's transaction.
"""

from __future__ import annotations

from typing import cast

from bookings.events import BLOCK_EVENTS, BOOKING_EVENTS, CalendarChange
from channelsync.choices import PUSH_KINDS
from channelsync.models import Channel
from channelsync.services import (
    channel_push_submit,
    channel_updates_record,
    update_payload,
    webhook_deliveries_record,
    webhook_event_data,
)
from pms.models import DomainEvent
from pms.pipeline.registry import event_handler


@event_handler(*BOOKING_EVENTS, *BLOCK_EVENTS, queue="channelsync", name="channelsync.outbound")
def record_outbound(event: DomainEvent) -> None:
    _record_channel_updates(event)
    webhook_deliveries_record(
        tenant_id=event.tenant_id,
        event_id=event.id,
        event_type=event.event_type,
        payload=webhook_event_data(event),
    )


def _record_channel_updates(event: DomainEvent) -> None:
    snapshot = cast(CalendarChange, event.payload)
    span = update_payload(event.payload, aggregate_type=event.aggregate_type)
    spans = [(snapshot["property_id"], span)]
    previous = snapshot.get("previous")
    if previous and previous["property_id"] != snapshot["property_id"]:
        # Moved to another property: the old one's channels must free the old dates.
        spans.append(
            (
                previous["property_id"],
                {"start": previous["check_in"], "end": previous["check_out"], "available": True},
            )
        )
    for property_id, payload in spans:
        channels = Channel.objects.filter(
            tenant_id=event.tenant_id,
            property_id=property_id,
            kind__in=PUSH_KINDS,
        ).exclude(push_url="")
        # Paused channels get their rows too (the sender skips them while paused):
        # what changed during a pause is pushed when the channel is resumed.
        for channel in channels:
            if snapshot.get("source") == channel.block_source:
                continue  # the channel's own import: never echo it back
            if (
                channel_updates_record(
                    channel=channel,
                    event_id=event.id,
                    aggregate_type=event.aggregate_type,
                    aggregate_id=event.aggregate_id,
                    sequence=event.sequence,
                    payload=payload,
                )
                and not channel.is_paused
            ):
                channel_push_submit(channel=channel)
