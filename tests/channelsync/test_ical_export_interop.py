"""The export feed read by parsers nobody here wrote: vobject and recurring-ical-events."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import recurring_ical_events
import vobject
from icalendar import Calendar

from bookings.services import block_create, booking_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def exported(client, alice, make_channel, future):
    stay = booking_create(
        tenant=alice.tenant,
        property=alice.property,
        guest=alice.guest,
        check_in=future,
        check_out=future + timedelta(days=3),
    )
    owner = block_create(
        tenant=alice.tenant,
        property=alice.property,
        start=future + timedelta(days=10),
        end=future + timedelta(days=12),
        label="owner stay",
    )
    channel = make_channel()
    response = client.get(f"/ical/{channel.export_token}.ics")
    assert response.status_code == 200
    expected = {
        f"booking-{stay.pk}@pms.localhost": (future, future + timedelta(days=3)),
        f"block-{owner.pk}@pms.localhost": (
            future + timedelta(days=10),
            future + timedelta(days=12),
        ),
    }
    return response.content, expected


def test_vobject_reads_the_export_as_all_day_events_with_exclusive_end(exported):
    body, expected = exported
    calendar = vobject.readOne(body.decode())
    assert calendar.name == "VCALENDAR"
    assert calendar.version.value == "2.0" and calendar.prodid.value
    events = {}
    for event in calendar.vevent_list:
        start, end = event.dtstart.value, event.dtend.value
        # All-day: dates, not date-times (vobject gives datetime for DATE-TIME).
        assert type(start) is date and type(end) is date
        assert event.dtstamp.value.tzinfo is not None  # DTSTAMP in UTC, as RFC 5545 requires
        events[event.uid.value] = (start, end)
    assert events == expected


def test_recurring_ical_events_reads_the_same_nights(exported, future):
    body, expected = exported
    occurrences = recurring_ical_events.of(Calendar.from_ical(body)).between(
        future - timedelta(days=1), future + timedelta(days=60)
    )
    assert {str(o["UID"]): (o["DTSTART"].dt, o["DTEND"].dt) for o in occurrences} == expected


def test_the_export_lines_are_crlf_and_folded_at_75_octets(exported):
    body, _ = exported
    assert body.endswith(b"\r\n") and b"\n" not in body.replace(b"\r\n", b"")
    assert all(len(line) <= 75 for line in body.split(b"\r\n"))
