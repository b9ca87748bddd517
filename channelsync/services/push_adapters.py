"""How one ChannelUpdate becomes HTTP calls: the adapter protocol and our generic JSON one.

``services.push`` picks the adapter by channel kind (``ADAPTERS``); the Channex
adapter is in ``services.push_channex``. An adapter only talks HTTP: it writes
nothing, and raises a FetchTransientError (retry), a PermanentError, or
PushConfigurationError (the channel's settings cannot work: pause it).
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from django.conf import settings

from channelsync.feeds.fetch import safe_request
from channelsync.models import Channel, ChannelUpdate


class PushConfigurationError(ValueError):
    """The channel's push settings cannot work (e.g. a malformed listing id): pause it."""


class ChannelAdapter(Protocol):
    def send(self, *, channel: Channel, update: ChannelUpdate) -> None:
        """Deliver one update. Raise FetchTransientError (retry) or a PermanentError."""


class GenericJsonAdapter:
    """POST ``{listing_id, reservation, start, end, available, sequence}`` to ``push_url``.

    ``Idempotency-Key`` is the event id, so a retried request is recognised.
    """

    def body(self, *, channel: Channel, update: ChannelUpdate) -> dict[str, Any]:
        return {
            "listing_id": channel.push_listing_id or str(channel.property_id),
            "update_id": update.pk,
            "event_id": str(update.event_id),
            "reservation": f"{update.aggregate_type}:{update.aggregate_id}",
            "sequence": update.sequence,
            **update.payload,
        }

    def send(self, *, channel: Channel, update: ChannelUpdate) -> None:
        headers = {"Content-Type": "application/json", "Idempotency-Key": str(update.event_id)}
        if channel.push_api_key:
            headers["Authorization"] = f"Bearer {channel.push_api_key}"
        safe_request(
            "POST",
            channel.push_url,
            headers=headers,
            data=json.dumps(self.body(channel=channel, update=update)).encode(),
            timeout=settings.CHANNEL_PUSH_TIMEOUT,
            max_bytes=64 * 1024,
        )
