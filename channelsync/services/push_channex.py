"""A push adapter in the shape of Channex's ARI (availability, rates and restrictions) API.

Configuration on the channel:

- ``push_url``: the API's base URL (``https://staging.channex.io`` or production);
- ``push_api_key``: sent as the ``user-api-key`` header;
- ``push_listing_id``: ``<property id>/<room type id>`` or
  ``<property id>/<room type id>/<rate plan id>``.

One update (a booking or block's full state) becomes:

- ``POST {push_url}/api/v1/availability`` with
  ``{"values": [{"property_id", "room_type_id", "date_from", "date_to", "availability"}]}``:
  ``availability`` 0 for taken nights, 1 for freed ones; ``date_to`` is the last
  night (ARI dates are inclusive; our ``end`` is the exclusive check-out day);
- with a rate plan, and when nights are freed, also
  ``POST {push_url}/api/v1/restrictions`` with the property's nightly rate
  (``{"values": [{"property_id", "rate_plan_id", "date_from", "date_to", "rate"}]}``).

Both are full state for those nights, so a retried update re-sends both safely.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

from channelsync.feeds.fetch import safe_request
from channelsync.models import Channel, ChannelUpdate
from channelsync.services.push_adapters import PushConfigurationError

PUSH_TIMEOUT = 10.0


class ChannexConfigurationError(PushConfigurationError):
    """The channel's listing id is not ``property/room type[/rate plan]``."""


def channex_listing_error(listing_id: str) -> str:
    """What is wrong with a listing id for this adapter ("" if nothing)."""
    parts = [part.strip() for part in listing_id.split("/")]
    if len(parts) not in (2, 3) or not all(parts):
        return "must be <property id>/<room type id> or <property id>/<room type id>/<rate plan id>"
    return ""


def _listing(channel: Channel) -> tuple[str, str, str]:
    error = channex_listing_error(channel.push_listing_id)
    if error:
        raise ChannexConfigurationError(f"push listing id {error}")
    parts = [part.strip() for part in channel.push_listing_id.split("/")]
    return parts[0], parts[1], parts[2] if len(parts) == 3 else ""


def _nights(update: ChannelUpdate) -> tuple[str, str]:
    start = date.fromisoformat(str(update.payload["start"]))
    end = date.fromisoformat(str(update.payload["end"]))
    last_night = max(start, end - timedelta(days=1))
    return start.isoformat(), last_night.isoformat()


class ChannexAriAdapter:
    def bodies(
        self, *, channel: Channel, update: ChannelUpdate
    ) -> list[tuple[str, dict[str, Any]]]:
        """(path, JSON body) of each request this update needs, in order."""
        property_id, room_type_id, rate_plan_id = _listing(channel)
        date_from, date_to = _nights(update)
        available = bool(update.payload["available"])
        requests: list[tuple[str, dict[str, Any]]] = [
            (
                "/api/v1/availability",
                {
                    "values": [
                        {
                            "property_id": property_id,
                            "room_type_id": room_type_id,
                            "date_from": date_from,
                            "date_to": date_to,
                            "availability": 1 if available else 0,
                        }
                    ]
                },
            )
        ]
        if rate_plan_id and available:
            requests.append(
                (
                    "/api/v1/restrictions",
                    {
                        "values": [
                            {
                                "property_id": property_id,
                                "rate_plan_id": rate_plan_id,
                                "date_from": date_from,
                                "date_to": date_to,
                                "rate": str(channel.property.nightly_rate),
                            }
                        ]
                    },
                )
            )
        return requests

    def send(self, *, channel: Channel, update: ChannelUpdate) -> None:
        headers = {"Content-Type": "application/json", "Idempotency-Key": str(update.event_id)}
        if channel.push_api_key:
            headers["user-api-key"] = channel.push_api_key
        base = channel.push_url.rstrip("/")
        for path, body in self.bodies(channel=channel, update=update):
            safe_request(
                "POST",
                base + path,
                headers=headers,
                data=json.dumps(body).encode(),
                timeout=PUSH_TIMEOUT,
                max_bytes=64 * 1024,
            )
