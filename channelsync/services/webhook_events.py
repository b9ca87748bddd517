"""The public ``data`` of each webhook event: what a tenant's receiver gets, and all it gets.

A webhook body is ``{"id", "type", "created_at", "data"}`` (documented in the
OpenAPI schema, ``channelsync.api.schema``: ``x-webhooks`` ``WebhookEvent`` and the
``*WebhookData`` components). ``data`` is built here from the internal event, one
builder per event type (``WEBHOOK_DATA``), and never is the internal payload
itself: the event payload may grow or change for our own handlers without any
receiver noticing, and nothing internal (aggregate keys, a channel's UIDs, the
raw block source) leaves.

Shapes (amounts are decimal strings, dates ISO ``YYYY-MM-DD``, property-local):

- ``booking.*``: ``booking_id``, ``reference``, ``property_id``, ``guest_id``,
  ``check_in``, ``check_out`` (exclusive), ``status``, ``guests_count``,
  ``accommodation_amount``, ``cleaning_amount``, ``tax_amount``, ``total``,
  ``currency``, ``source`` (direct, admin, airbnb, ...), ``sequence`` (grows with
  each change of the booking: ignore an event with a lower one than seen);
  ``booking.modified`` adds ``previous`` (the same booking fields before the
  change, without ``sequence``); ``booking.cancelled`` adds ``cancellation``
  (``policy``, ``days_before``, ``refund_percent``, ``fee``, ``reason``).
- ``block.*``: ``block_id``, ``property_id``, ``start``, ``end`` (exclusive),
  ``label``, ``is_active``, ``channel_id`` (the channel that imported it, null for
  a block made by hand), ``sequence``.
- ``webhook.test``: ``message``, ``subscription_id``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bookings import events
from pms.models import DomainEvent

TEST_EVENT_TYPE = "webhook.test"

BOOKING_FIELDS = (
    "booking_id",
    "reference",
    "property_id",
    "guest_id",
    "check_in",
    "check_out",
    "status",
    "guests_count",
    "accommodation_amount",
    "cleaning_amount",
    "tax_amount",
    "total",
    "currency",
    "source",
)
CANCELLATION_FIELDS = ("policy", "days_before", "refund_percent", "fee", "reason")
BLOCK_FIELDS = ("block_id", "property_id", "start", "end", "label", "is_active")
CHANNEL_SOURCE_PREFIX = "channel:"


def _pick(payload: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    # .get: an event recorded before a field existed is sent with it null, never dropped
    # (the same handler records the channel pushes: it must not fail on an old event).
    return {name: payload.get(name) for name in fields}


def booking_data(event: DomainEvent) -> dict[str, Any]:
    """``booking.*``: the booking's state after the change."""
    return {**_pick(event.payload, BOOKING_FIELDS), "sequence": event.sequence}


def booking_modified_data(event: DomainEvent) -> dict[str, Any]:
    """``booking.modified``: the booking, and its fields before the change as ``previous``."""
    return {
        **booking_data(event),
        "previous": _pick(event.payload.get("previous") or {}, BOOKING_FIELDS),
    }


def booking_cancelled_data(event: DomainEvent) -> dict[str, Any]:
    """``booking.cancelled``: the booking, and the cancellation terms fixed when it happened."""
    return {
        **booking_data(event),
        "cancellation": _pick(event.payload.get("cancellation") or {}, CANCELLATION_FIELDS),
    }


def block_data(event: DomainEvent) -> dict[str, Any]:
    """``block.*``: the block's state after the change."""
    source = str(event.payload.get("source") or "")
    channel_id = (
        int(source.removeprefix(CHANNEL_SOURCE_PREFIX))
        if source.startswith(CHANNEL_SOURCE_PREFIX)
        else None
    )
    return {
        **_pick(event.payload, BLOCK_FIELDS),
        "channel_id": channel_id,
        "sequence": event.sequence,
    }


def webhook_test_data(*, subscription_id: int) -> dict[str, Any]:
    """``webhook.test``: sent on subscribing and from the admin."""
    return {"message": "Test delivery from PMS", "subscription_id": subscription_id}


# Every event type a subscription can receive, and the builder of its public data.
WEBHOOK_DATA: dict[str, Callable[[DomainEvent], dict[str, Any]]] = {
    events.BOOKING_CREATED: booking_data,
    events.BOOKING_CONFIRMED: booking_data,
    events.BOOKING_MODIFIED: booking_modified_data,
    events.BOOKING_CANCELLED: booking_cancelled_data,
    events.BOOKING_CHECKED_IN: booking_data,
    events.BOOKING_CHECKED_OUT: booking_data,
    events.BOOKING_NO_SHOW: booking_data,
    events.BLOCK_CREATED: block_data,
    events.BLOCK_MODIFIED: block_data,
    events.BLOCK_CANCELLED: block_data,
}
# A new event type of a known aggregate gets its aggregate's shape until it has its own.
AGGREGATE_DATA: dict[str, Callable[[DomainEvent], dict[str, Any]]] = {
    events.BOOKING_AGGREGATE: booking_data,
    events.BLOCK_AGGREGATE: block_data,
}


def webhook_event_data(event: DomainEvent) -> dict[str, Any]:
    """The public ``data`` of ``event``. LookupError: an aggregate with no public shape."""
    build = WEBHOOK_DATA.get(event.event_type) or AGGREGATE_DATA.get(event.aggregate_type)
    if build is None:
        raise LookupError(f"no public webhook shape for {event.event_type!r}")
    return build(event)
