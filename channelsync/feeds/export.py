"""Build a channel's export feed: bookings and blocks as all-day VEVENTs.

UIDs are stable per booking/block (dates can change, the UID does not), DTEND
is exclusive (the check-out day), and the channel's own imported blocks are
left out so a channel never sees its own reservations echoed back. Other
channels' blocks are included: that is how one channel learns another sold the
dates.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.db.models import Max
from icalendar import Calendar, Event

from bookings.choices import OCCUPYING_STATUSES
from bookings.models import Block, Booking
from channelsync.models import Channel

PRODID = "-//PMS//Channel sync//EN"
UID_DOMAIN = "pms.localhost"
PAST_DAYS = 30


@dataclass(frozen=True)
class ExportFeed:
    body: bytes
    etag: str
    last_modified: datetime | None


def export_feed_build(*, channel: Channel, today: date) -> ExportFeed:
    since = today - timedelta(days=PAST_DAYS)
    bookings = Booking.objects.filter(
        property_id=channel.property_id, status__in=OCCUPYING_STATUSES, check_out__gte=since
    ).order_by("check_in", "pk")
    blocks = (
        Block.objects.filter(property_id=channel.property_id, is_active=True, end__gte=since)
        .exclude(source=channel.block_source)
        .order_by("start", "pk")
    )
    # Last-Modified covers rows that left the feed too (a cancellation bumps updated_at).
    stamps = [
        Booking.objects.filter(property_id=channel.property_id).aggregate(m=Max("updated_at"))["m"],
        Block.objects.filter(property_id=channel.property_id)
        .exclude(source=channel.block_source)
        .aggregate(m=Max("updated_at"))["m"],
    ]
    last_modified = max((s for s in stamps if s is not None), default=None)
    stamp = (last_modified or datetime(2000, 1, 1, tzinfo=UTC)).astimezone(UTC)

    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", f"{channel.property.name}")
    for booking in bookings:
        calendar.add_component(
            _event(f"booking-{booking.pk}", booking.check_in, booking.check_out, "Reserved", stamp)
        )
    for block in blocks:
        calendar.add_component(
            _event(f"block-{block.pk}", block.start, block.end, "Not available", stamp)
        )
    body = calendar.to_ical()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return ExportFeed(body=body, etag=etag, last_modified=last_modified)


def _event(key: str, start: date, end: date, summary: str, stamp: datetime) -> Event:
    event = Event()
    event.add("uid", f"{key}@{UID_DOMAIN}")
    event.add("dtstamp", stamp)
    event.add("dtstart", start)  # a date: VALUE=DATE
    event.add("dtend", end)  # exclusive: the check-out day
    event.add("summary", summary)
    event.add("transp", "OPAQUE")
    return event
