"""iCal import from real loopback servers serving Airbnb, Booking.com and Vrbo shapes."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.utils import timezone

from bookings.models import Block
from bookings.services import booking_create
from channelsync.choices import ChannelKind, ChannelStatus, ConflictStatus
from channelsync.feeds.parse import FeedError, parse_feed
from channelsync.models import Channel, Conflict
from channelsync.tasks import alert_conflict, import_channel
from pms.models import DomainEvent
from tests.channelsync.support import airbnb_feed, booking_com_feed, vrbo_feed
from tests.support.http_peer import Reply

pytestmark = pytest.mark.django_db


def _active(channel):
    return sorted(
        Block.objects.filter(source=channel.block_source, is_active=True).values_list(
            "external_uid", "start", "end"
        )
    )


def _serve(peer, body, path="/feed.ics"):
    peer.routes[path] = Reply(200, body, {"Content-Type": "text/calendar"})


def test_airbnb_import_creates_moves_and_cancels_blocks(peer, make_channel, future):
    channel = make_channel(import_url=peer.url("/feed.ics"))
    stay, closed = (
        (future, future + timedelta(days=3)),
        (future + timedelta(days=10), future + timedelta(days=12)),
    )
    _serve(peer, airbnb_feed(("r1", *stay, "Reserved"), ("n1", *closed, "Airbnb (Not available)")))
    assert import_channel(channel.pk) == "imported"
    assert _active(channel) == [("n1@airbnb.com", *closed), ("r1@airbnb.com", *stay)]
    label = Block.objects.get(external_uid="r1@airbnb.com").label
    assert label == "Reserved"

    moved = (future + timedelta(days=1), future + timedelta(days=4))
    _serve(peer, airbnb_feed(("r1", *moved, "Reserved"), ("n1", *closed, "Airbnb (Not available)")))
    import_channel(channel.pk)
    assert ("r1@airbnb.com", *moved) in _active(channel)

    # n1 vanishes: cancelled only after CHANNEL_VANISH_AFTER_FETCHES (2) fetches without it.
    _serve(peer, airbnb_feed(("r1", *moved, "Reserved")))
    import_channel(channel.pk)
    assert ("n1@airbnb.com", *closed) in _active(channel)
    import_channel(channel.pk)
    assert _active(channel) == [("r1@airbnb.com", *moved)]

    events = list(
        DomainEvent.objects.filter(aggregate_type="block").values_list("event_type", flat=True)
    )
    assert sorted(events) == sorted(
        ["block.created", "block.created", "block.modified", "block.cancelled"]
    )
    channel.refresh_from_db()
    assert channel.status == ChannelStatus.OK and channel.consecutive_failures == 0
    assert channel.last_success_at is not None


def test_booking_com_and_a_reappearing_uid(peer, make_channel, future):
    channel = make_channel(kind=ChannelKind.BOOKING_COM, import_url=peer.url("/feed.ics"))
    span = (future, future + timedelta(days=2))
    _serve(peer, booking_com_feed(("abc", *span)))
    import_channel(channel.pk)
    block = Block.objects.get(source=channel.block_source)
    assert (block.label, block.start, block.end) == ("CLOSED - Not available", *span)
    _serve(peer, booking_com_feed())
    import_channel(channel.pk)
    import_channel(channel.pk)
    block.refresh_from_db()
    assert not block.is_active
    _serve(peer, booking_com_feed(("abc", *span)))
    import_channel(channel.pk)
    block.refresh_from_db()
    assert block.is_active


def test_vrbo_uid_change_on_date_change_moves_the_block(peer, make_channel, future):
    channel = make_channel(kind=ChannelKind.VRBO, import_url=peer.url("/feed.ics"))
    _serve(peer, vrbo_feed(("1001-aa", future, future + timedelta(days=3), "Reserved - Ann")))
    import_channel(channel.pk)
    new_span = (future + timedelta(days=5), future + timedelta(days=7))
    _serve(peer, vrbo_feed(("1001-bb", *new_span, "Reserved - Ann")))
    import_channel(channel.pk)
    import_channel(channel.pk)
    assert _active(channel) == [("1001-bb", *new_span)]
    # The old and new UID overlapping for a moment is not a conflict (same channel).
    assert not Conflict.objects.exists()


def test_conditional_requests_and_304(peer, make_channel, future):
    channel = make_channel(import_url=peer.url("/feed.ics"))
    body = airbnb_feed(("r1", future, future + timedelta(days=2), "Reserved"))
    calls = []

    def feed(seen):
        calls.append(seen.headers.get("If-None-Match"))
        if seen.headers.get("If-None-Match") == '"v1"':
            return Reply(304, headers={"ETag": '"v1"'})
        return Reply(200, body, {"ETag": '"v1"', "Last-Modified": "Sat, 01 Aug 2026 10:00:00 GMT"})

    peer.routes["/feed.ics"] = feed
    assert import_channel(channel.pk) == "imported"
    assert import_channel(channel.pk) == "not-modified"
    assert calls == [None, '"v1"']
    assert peer.hits("/feed.ics")[1].headers["If-Modified-Since"] == "Sat, 01 Aug 2026 10:00:00 GMT"
    assert len(_active(channel)) == 1


def test_a_malformed_feed_is_a_channel_error_not_a_crash(peer, make_channel):
    channel = make_channel(import_url=peer.url("/feed.ics"))
    _serve(peer, b"<html><body>Please log in</body></html>")
    assert import_channel(channel.pk) == "malformed"
    channel.refresh_from_db()
    assert channel.status == ChannelStatus.ERROR
    assert channel.consecutive_failures == 1
    assert "iCalendar" in channel.last_error


def test_a_refused_url_is_a_channel_error(settings, make_channel):
    settings.CHANNEL_FETCH_ALLOW_LOOPBACK = False
    channel = make_channel(import_url="http://169.254.169.254/latest/meta-data/")
    assert import_channel(channel.pk) == "error"
    channel.refresh_from_db()
    assert "refused" in channel.last_error and channel.status == ChannelStatus.ERROR


def test_an_import_overlapping_a_booking_or_another_channel_is_a_conflict(
    peer, make_channel, alice, future, django_capture_on_commit_callbacks, mailoutbox
):
    booking = booking_create(
        tenant=alice.tenant,
        property=alice.property,
        guest=alice.guest,
        check_in=future,
        check_out=future + timedelta(days=3),
    )
    airbnb = make_channel(import_url=peer.url("/airbnb.ics"))
    vrbo = make_channel(name="Vrbo", kind=ChannelKind.VRBO, import_url=peer.url("/vrbo.ics"))
    _serve(
        peer,
        airbnb_feed(("r9", future + timedelta(days=2), future + timedelta(days=5), "Reserved")),
        "/airbnb.ics",
    )
    _serve(
        peer,
        vrbo_feed(("v9", future + timedelta(days=4), future + timedelta(days=6), "Blocked")),
        "/vrbo.ics",
    )
    import_channel(airbnb.pk)
    import_channel(vrbo.pk)
    import_channel(airbnb.pk)  # a re-import does not duplicate the incident

    with_booking = Conflict.objects.get(booking=booking)
    assert (with_booking.channel, with_booking.start, with_booking.end) == (
        airbnb,
        future + timedelta(days=2),
        future + timedelta(days=3),
    )
    between_channels = Conflict.objects.get(other_block__isnull=False)
    assert between_channels.channel == vrbo
    assert (between_channels.start, between_channels.end) == (
        future + timedelta(days=4),
        future + timedelta(days=5),
    )
    assert Conflict.objects.filter(status=ConflictStatus.OPEN).count() == 2

    # The manager is told, once per incident.
    assert alert_conflict(with_booking.pk) is True
    assert alert_conflict(with_booking.pk) is False
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == [alice.manager.email]
    assert booking.reference in mailoutbox[0].body


def test_polls_are_claimed_once_and_spread_with_jitter(make_channel, peer):
    from channelsync.services import channels_claim_due_polls

    channels = [make_channel(name=f"c{i}", import_url=peer.url("/x.ics")) for i in range(5)]
    claimed = channels_claim_due_polls()
    assert sorted(claimed) == sorted(c.pk for c in channels)
    assert channels_claim_due_polls() == []
    now = timezone.now()
    next_polls = [c.next_poll_at for c in Channel.objects.all()]
    assert all(
        t is not None and now + timedelta(minutes=14) < t < now + timedelta(minutes=17)
        for t in next_polls
    )
    assert len(set(next_polls)) == 5


TZ_FEED = b"""BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Example//EN\r
BEGIN:VTIMEZONE\r
TZID:America/New_York\r
BEGIN:STANDARD\r
DTSTART:20071104T020000\r
RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU\r
TZOFFSETFROM:-0400\r
TZOFFSETTO:-0500\r
END:STANDARD\r
BEGIN:DAYLIGHT\r
DTSTART:20070311T020000\r
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU\r
TZOFFSETFROM:-0500\r
TZOFFSETTO:-0400\r
END:DAYLIGHT\r
END:VTIMEZONE\r
BEGIN:VEVENT\r
UID:tz-1\r
DTSTART;TZID=America/New_York:20300110T210000\r
DTEND;TZID=America/New_York:20300112T100000\r
SUMMARY:Reserved\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:utc-1\r
DTSTART:20300201T230000Z\r
DTEND:20300203T090000Z\r
SUMMARY:Not available\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:weekly\r
DTSTART;VALUE=DATE:20300304\r
DTEND;VALUE=DATE:20300305\r
RRULE:FREQ=WEEKLY;COUNT=3\r
EXDATE;VALUE=DATE:20300311\r
SUMMARY:CLOSED - Not available\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:gone\r
DTSTART;VALUE=DATE:20300401\r
DTEND;VALUE=DATE:20300402\r
STATUS:CANCELLED\r
SUMMARY:Reserved\r
END:VEVENT\r
END:VCALENDAR\r
"""


def test_time_zones_date_times_and_recurring_events_become_local_nights():
    from zoneinfo import ZoneInfo

    lisbon = ZoneInfo("Europe/Lisbon")
    spans = {
        e.uid: (e.start, e.end)
        for e in parse_feed(TZ_FEED, tz=lisbon, today=date(2029, 12, 1), horizon_days=730)
    }
    # 21:00 New York on the 10th is 02:00 on the 11th in Lisbon.
    assert spans["tz-1"] == (date(2030, 1, 11), date(2030, 1, 12))
    assert spans["utc-1"] == (date(2030, 2, 1), date(2030, 2, 3))
    assert spans["weekly#2030-03-04"] == (date(2030, 3, 4), date(2030, 3, 5))
    assert "weekly#2030-03-11" not in spans  # EXDATE
    assert spans["weekly#2030-03-18"] == (date(2030, 3, 18), date(2030, 3, 19))
    assert "gone" not in spans


def test_past_events_are_ignored_and_garbage_is_a_feed_error(future):
    past = airbnb_feed(("old", date(2020, 1, 1), date(2020, 1, 3), "Reserved"))
    assert parse_feed(past, tz=timezone.get_current_timezone(), today=future) == []
    for garbage in (b"", b"not a calendar", b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nEND:VCALENDAR"):
        with pytest.raises(FeedError):
            parse_feed(garbage, tz=timezone.get_current_timezone(), today=future)


def test_a_secondly_rrule_from_1900_is_refused_quickly():
    import time

    feed = (
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:evil\r\n"
        b"DTSTART:19000101T000000Z\r\nDTEND:19000101T000001Z\r\nRRULE:FREQ=SECONDLY\r\n"
        b"END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    started = time.monotonic()
    with pytest.raises(FeedError, match="more frequent than daily"):
        parse_feed(feed, tz=timezone.get_default_timezone(), today=date(2026, 1, 1))
    assert time.monotonic() - started < 1


def test_a_daily_rrule_from_1900_is_expanded_from_the_window_only():
    import time

    feed = (
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:weekly\r\n"
        b"DTSTART;VALUE=DATE:19000101\r\nDTEND;VALUE=DATE:19000102\r\n"
        b"RRULE:FREQ=DAILY;INTERVAL=7\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    started = time.monotonic()
    events = parse_feed(feed, tz=timezone.get_default_timezone(), today=date(2026, 1, 1))
    assert time.monotonic() - started < 1
    assert len(events) == 104  # every 7th day of the 730-day horizon
    assert all((event.start - date(1900, 1, 1)).days % 7 == 0 for event in events)
    assert events[0].start >= date(2026, 1, 1)


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_imports_of_one_channel_apply_once(peer, make_channel, future):
    import threading

    from django.db import connection

    channel = make_channel(import_url=peer.url("/feed.ics"))
    kept, gone = (
        (future, future + timedelta(days=2)),
        (future + timedelta(days=5), future + timedelta(days=6)),
    )
    _serve(peer, airbnb_feed(("r1", *kept, "Reserved"), ("r2", *gone, "Reserved")))
    import_channel(channel.pk)
    # r2 vanishes once: with CHANNEL_VANISH_AFTER_FETCHES = 2 it must stay after one poll,
    # even when "sync now" and the scheduled poll run at the same time.
    peer.routes["/feed.ics"] = Reply(200, airbnb_feed(("r1", *kept, "Reserved")), delay=1.0)
    results = []

    def run():
        try:
            results.append(import_channel(channel.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == ["busy", "imported"]
    assert len(peer.hits("/feed.ics")) == 2  # the first import + one of the two
    assert ("r2@airbnb.com", *gone) in _active(channel)


def test_an_import_older_than_the_last_success_is_discarded(peer, make_channel, future):
    from channelsync.feeds.parse import FeedEvent
    from channelsync.services import channel_import_apply

    channel = make_channel(import_url=peer.url("/feed.ics"))
    started = timezone.now()
    newer = [FeedEvent(uid="new", start=future, end=future + timedelta(days=1), summary="x")]
    channel_import_apply(channel=channel, events=newer, fetched_at=timezone.now())
    counts = channel_import_apply(channel=channel, events=[], fetched_at=started)
    assert counts["outdated"] == 1
    assert [uid for uid, *_ in _active(channel)] == ["new"]
