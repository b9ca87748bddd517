"""iCal import of recurrences, shared UIDs, X-WR-TIMEZONE and unreadable events.

Feeds are served by a real loopback peer and imported by the task's code path.
"""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest

from bookings.models import Block
from channelsync.feeds.parse import parse_feed, parse_feed_report
from channelsync.models import Channel
from channelsync.tasks import import_channel
from tests.factories import PASSWORD
from tests.support.http_peer import Reply

pytestmark = pytest.mark.django_db

UTC = ZoneInfo("UTC")


def _d(day: date) -> str:
    return day.strftime("%Y%m%d")


def _feed(*events: str, extra: str = "") -> bytes:
    head = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//EN\r\n" + extra
    return (head + "".join(events) + "END:VCALENDAR\r\n").encode()


def _event(uid: str, *lines: str) -> str:
    return (
        "BEGIN:VEVENT\r\n"
        + f"UID:{uid}\r\n"
        + "".join(f"{x}\r\n" for x in lines)
        + "END:VEVENT\r\n"
    )


def _active(channel):
    return sorted(
        Block.objects.filter(source=channel.block_source, is_active=True).values_list(
            "external_uid", "start", "end"
        )
    )


def _serve(peer, body):
    peer.routes["/feed.ics"] = Reply(200, body, {"Content-Type": "text/calendar"})


def _spans(events):
    return {e.uid: (e.start, e.end) for e in events}


def test_rdate_occurrences_block_their_nights_beside_the_rule():
    feed = _feed(
        _event(
            "cleaning",
            "DTSTART;VALUE=DATE:20300304",
            "DTEND;VALUE=DATE:20300305",
            "RRULE:FREQ=WEEKLY;COUNT=2",
            "RDATE;VALUE=DATE:20300320,20300401",
            "SUMMARY:Owner stay",
        )
    )
    spans = _spans(parse_feed(feed, tz=UTC, today=date(2030, 1, 1)))
    assert spans == {
        "cleaning#2030-03-04": (date(2030, 3, 4), date(2030, 3, 5)),
        "cleaning#2030-03-11": (date(2030, 3, 11), date(2030, 3, 12)),
        "cleaning#2030-03-20": (date(2030, 3, 20), date(2030, 3, 21)),
        "cleaning#2030-04-01": (date(2030, 4, 1), date(2030, 4, 2)),
    }


def test_a_weekly_event_keeps_its_wall_clock_across_dst_and_an_exdate_in_another_zone():
    # 19:30 in New York is 00:30 UTC the next day in winter, 23:30 UTC the same day
    # in summer (DST starts 10 March 2030); the EXDATE is the second occurrence
    # written in Berlin time.
    feed = _feed(
        _event(
            "weekly-evening",
            "DTSTART;TZID=America/New_York:20300302T193000",
            "DTEND;TZID=America/New_York:20300302T203000",
            "RRULE:FREQ=WEEKLY;COUNT=4",
            "EXDATE;TZID=Europe/Berlin:20300310T013000",
        )
    )
    spans = sorted(_spans(parse_feed(feed, tz=UTC, today=date(2030, 1, 1))).values())
    assert spans == [
        (date(2030, 3, 3), date(2030, 3, 4)),
        (date(2030, 3, 16), date(2030, 3, 17)),
        (date(2030, 3, 23), date(2030, 3, 24)),
    ]


def test_a_recurrence_id_override_moves_one_instance_and_its_block(peer, make_channel, future):
    channel = make_channel(import_url=peer.url("/feed.ics"))
    start = future
    rule = [
        f"DTSTART;VALUE=DATE:{_d(start)}",
        f"DTEND;VALUE=DATE:{_d(start + timedelta(days=2))}",
        "RRULE:FREQ=WEEKLY;COUNT=3",
        "SUMMARY:Owner weekend",
    ]
    _serve(peer, _feed(_event("owner", *rule)))
    assert import_channel(channel.pk) == "imported"
    second = start + timedelta(days=7)
    assert (f"owner#{second}", second, second + timedelta(days=2)) in _active(channel)

    moved = (second + timedelta(days=2), second + timedelta(days=5))
    override = _event(
        "owner",
        f"RECURRENCE-ID;VALUE=DATE:{_d(second)}",
        f"DTSTART;VALUE=DATE:{_d(moved[0])}",
        f"DTEND;VALUE=DATE:{_d(moved[1])}",
        "SUMMARY:Owner long weekend",
    )
    _serve(peer, _feed(_event("owner", *rule), override))
    assert import_channel(channel.pk) == "imported"
    blocks = _active(channel)
    assert len(blocks) == 3
    # The same block moved (keyed by its RECURRENCE-ID), not a new one beside it.
    assert (f"owner#{second}", *moved) in blocks
    assert Block.objects.get(external_uid=f"owner#{second}").label == "Owner long weekend"


def test_two_vevents_sharing_a_uid_both_block_their_nights(peer, make_channel, future):
    channel = make_channel(import_url=peer.url("/feed.ics"))
    first = (future, future + timedelta(days=2))
    second = (future + timedelta(days=10), future + timedelta(days=13))
    _serve(
        peer,
        _feed(
            _event(
                "dup@x", f"DTSTART;VALUE=DATE:{_d(first[0])}", f"DTEND;VALUE=DATE:{_d(first[1])}"
            ),
            _event(
                "dup@x", f"DTSTART;VALUE=DATE:{_d(second[0])}", f"DTEND;VALUE=DATE:{_d(second[1])}"
            ),
        ),
    )
    assert import_channel(channel.pk) == "imported"
    assert [(s, e) for _, s, e in _active(channel)] == [first, second]


def test_a_higher_sequence_vevent_is_the_revision_of_the_same_stay():
    feed = _feed(
        _event("rev", "SEQUENCE:0", "DTSTART;VALUE=DATE:20300301", "DTEND;VALUE=DATE:20300303"),
        _event("rev", "SEQUENCE:1", "DTSTART;VALUE=DATE:20300305", "DTEND;VALUE=DATE:20300307"),
    )
    assert _spans(parse_feed(feed, tz=UTC, today=date(2030, 1, 1))) == {
        "rev": (date(2030, 3, 5), date(2030, 3, 7))
    }


def test_floating_times_of_a_google_export_are_read_in_its_x_wr_timezone():
    # 20:00 in Los Angeles on the 5th is 04:00 UTC on the 6th; the checkout 10:00 the
    # next morning is 18:00 UTC the 6th: a same-day stay takes the night of the 6th.
    event = _event("g1", "DTSTART:20300105T200000", "DTEND:20300106T100000", "SUMMARY:Busy")
    google = _feed(event, extra="X-WR-TIMEZONE:America/Los_Angeles\r\n")
    assert _spans(parse_feed(google, tz=UTC, today=date(2030, 1, 1))) == {
        "g1": (date(2030, 1, 6), date(2030, 1, 7))
    }
    # Without X-WR-TIMEZONE a floating time is the property's own local time.
    assert _spans(parse_feed(_feed(event), tz=UTC, today=date(2030, 1, 1))) == {
        "g1": (date(2030, 1, 5), date(2030, 1, 6))
    }


def test_one_unreadable_event_imports_the_rest_keeps_its_block_and_warns(
    peer, make_channel, future, settings
):
    settings.CHANNEL_VANISH_AFTER_FETCHES = 2
    channel = make_channel(import_url=peer.url("/feed.ics"))
    good = (future, future + timedelta(days=2))
    kept = (future + timedelta(days=5), future + timedelta(days=8))
    new = (future + timedelta(days=20), future + timedelta(days=21))

    def stay(uid, span, start_value=None):
        return _event(
            uid,
            f"DTSTART;VALUE=DATE:{start_value or _d(span[0])}",
            f"DTEND;VALUE=DATE:{_d(span[1])}",
            "SUMMARY:Reserved",
        )

    _serve(peer, _feed(stay("good", good), stay("fragile", kept)))
    assert import_channel(channel.pk) == "imported"

    broken = _feed(
        stay("good", good), stay("fragile", kept, start_value="2030XX01"), stay("new", new)
    )
    _serve(peer, broken)
    for _ in range(3):  # more fetches than CHANNEL_VANISH_AFTER_FETCHES
        assert import_channel(channel.pk) == "imported"
    assert _active(channel) == [("fragile", *kept), ("good", *good), ("new", *new)]
    channel.refresh_from_db()
    assert channel.status == "ok"
    assert "'fragile'" in channel.import_warnings and "DTSTART" in channel.import_warnings

    _serve(peer, _feed(stay("good", good), stay("new", new)))
    import_channel(channel.pk)
    channel.refresh_from_db()
    assert channel.import_warnings == ""


def test_the_channel_warning_shows_in_the_admin_to_its_tenant_only(
    client, alice, bob, make_channel
):
    channel = make_channel(name="Alice Airbnb", import_url="https://example.com/a.ics")
    Channel.objects.filter(pk=channel.pk).update(
        import_warnings="Not imported (its blocks are kept): event 'fragile-uid' ..."
    )
    client.login(username=alice.manager.username, password=PASSWORD)
    assert "fragile-uid" in client.get("/admin/channelsync/channel/").content.decode()
    change = client.get(f"/admin/channelsync/channel/{channel.pk}/change/").content.decode()
    assert "fragile-uid" in change
    client.logout()
    client.login(username=bob.manager.username, password=PASSWORD)
    assert "fragile-uid" not in client.get("/admin/channelsync/channel/").content.decode()
    assert client.get(f"/admin/channelsync/channel/{channel.pk}/change/").status_code == 404


def test_a_feed_whose_only_event_is_unreadable_is_a_feed_error():
    from channelsync.feeds.parse import FeedError

    feed = _feed(_event("x", "DTSTART;VALUE=DATE:2030XX01", "SUMMARY:Reserved"))
    with pytest.raises(FeedError, match="no readable event"):
        parse_feed_report(feed, tz=UTC, today=date(2030, 1, 1))


def test_a_rule_no_date_matches_costs_its_own_event_not_the_feed():
    import time

    from channelsync.feeds.parse import EVENT_BUDGET_SECONDS

    # No 30 February: dateutil walks on to the year 9999 looking for one.
    never = _event(
        "never", "DTSTART;VALUE=DATE:19000101", "RRULE:FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30"
    )
    fine = _event("fine", "DTSTART;VALUE=DATE:20300301", "DTEND;VALUE=DATE:20300303")
    started = time.process_time()
    report = parse_feed_report(_feed(never, fine), tz=UTC, today=date(2030, 1, 1))
    assert time.process_time() - started < EVENT_BUDGET_SECONDS + 1
    assert _spans(report.events) == {"fine": (date(2030, 3, 1), date(2030, 3, 3))}
    assert [p.uid for p in report.problems] == ["never"]
    assert "CPU" in report.problems[0].message
