"""The export feed: all-day events, stable UIDs, conditional GETs, revocation, round trip."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from icalendar import Calendar, Component, vDDDTypes

from bookings.services import (
    block_create,
    block_upsert,
    booking_cancel,
    booking_create,
    booking_modify,
)
from channelsync.feeds.parse import parse_feed
from channelsync.services import channel_export_token_rotate

pytestmark = pytest.mark.django_db


@pytest.fixture
def stay(alice, future):
    return booking_create(
        tenant=alice.tenant,
        property=alice.property,
        guest=alice.guest,
        check_in=future,
        check_out=future + timedelta(days=3),
    )


def _get(client, channel, **headers):
    return client.get(f"/ical/{channel.export_token}.ics", headers=headers)


def _day(event: Component, name: str) -> date:
    """The date of ``event``'s all-day property ``name`` (DTSTART, DTEND)."""
    prop = event[name]
    assert isinstance(prop, vDDDTypes) and isinstance(prop.dt, date)
    return prop.dt


def test_bookings_and_blocks_are_all_day_events_with_exclusive_end(
    client, alice, make_channel, stay, future
):
    channel = make_channel()
    block_create(
        tenant=alice.tenant,
        property=alice.property,
        start=future + timedelta(days=10),
        end=future + timedelta(days=12),
        label="owner stay",
    )
    # The channel's own imports are not echoed back to it.
    block_upsert(
        tenant=alice.tenant,
        property=alice.property,
        source=channel.block_source,
        external_uid="own@airbnb.com",
        start=future + timedelta(days=20),
        end=future + timedelta(days=21),
    )
    response = _get(client, channel)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/calendar")
    body = response.content
    assert b"DTSTART;VALUE=DATE:" + future.strftime("%Y%m%d").encode() in body
    assert b"DTEND;VALUE=DATE:" + (future + timedelta(days=3)).strftime("%Y%m%d").encode() in body

    calendar = Calendar.from_ical(body)
    events = {
        str(e["UID"]): (_day(e, "DTSTART"), _day(e, "DTEND")) for e in calendar.walk("VEVENT")
    }
    assert events == {
        f"booking-{stay.pk}@pms.localhost": (future, future + timedelta(days=3)),
        next(uid for uid in events if uid.startswith("block-")): (
            future + timedelta(days=10),
            future + timedelta(days=12),
        ),
    }

    # Round trip through our own import parser.
    parsed = parse_feed(body, tz=alice.property.timezone, today=future - timedelta(days=1))
    assert sorted((e.start, e.end) for e in parsed) == sorted(events.values())


def test_uids_are_stable_when_dates_change_and_cancelled_bookings_leave(
    client, make_channel, stay, future
):
    channel = make_channel()
    uid = f"booking-{stay.pk}@pms.localhost"
    booking_modify(
        booking=stay, check_in=future + 1 * timedelta(days=1), check_out=future + timedelta(days=4)
    )
    calendar = Calendar.from_ical(_get(client, channel).content)
    (event,) = calendar.walk("VEVENT")
    assert str(event["UID"]) == uid and _day(event, "DTSTART") == future + timedelta(days=1)
    booking_cancel(booking=stay)
    assert Calendar.from_ical(_get(client, channel).content).walk("VEVENT") == []


def test_etag_and_last_modified_give_304_until_something_changes(
    client, alice, make_channel, stay, future
):
    channel = make_channel()
    first = _get(client, channel)
    etag, last_modified = first["ETag"], first["Last-Modified"]
    assert _get(client, channel, if_none_match=etag).status_code == 304
    assert _get(client, channel, if_modified_since=last_modified).status_code == 304
    booking_create(
        tenant=alice.tenant,
        property=alice.property,
        guest=alice.guest,
        check_in=future + timedelta(days=30),
        check_out=future + timedelta(days=31),
    )
    changed = _get(client, channel, if_none_match=etag)
    assert changed.status_code == 200 and changed["ETag"] != etag


def test_a_revoked_or_unknown_token_is_404(client, make_channel, stay):
    channel = make_channel()
    old_token = channel.export_token
    assert _get(client, channel).status_code == 200
    rotated = channel_export_token_rotate(channel=channel)
    assert client.get(f"/ical/{old_token}.ics").status_code == 404
    assert client.get("/ical/not-a-token.ics").status_code == 404
    assert _get(client, rotated).status_code == 200


def test_another_tenants_token_serves_only_that_tenants_property(
    client, alice, bob, make_channel, stay, future
):
    bob_channel = make_channel(bob)
    body = _get(client, bob_channel).content
    assert Calendar.from_ical(body).walk("VEVENT") == []  # Alice's booking is not in Bob's feed
    assert stay.reference.encode() not in body
