"""Parse a channel's iCal feed into blocked date spans (property-local, end exclusive).

Real feeds: Airbnb sends ``VALUE=DATE`` events ("Reserved", "Airbnb (Not
available)"), future dates only; Booking.com "CLOSED - Not available"; Vrbo
"Reserved"/"Blocked" with UIDs that may change when dates change. Some feeds use
date-times with a TZID or UTC; those are converted to the property's time zone
and the nights they cover are blocked. Recurring events are expanded within a
horizon. Anything that is not a readable calendar raises FeedError.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from itertools import takewhile
from typing import Any

from dateutil.rrule import DAILY, WEEKLY, rrule, rruleset, rrulestr
from icalendar import Calendar

MAX_OCCURRENCES = 500
PARSE_BUDGET_SECONDS = 10


class FeedError(ValueError):
    """The feed cannot be read as iCalendar; the message is shown on the channel."""


@dataclass(frozen=True)
class FeedEvent:
    uid: str
    start: date
    end: date  # exclusive
    summary: str


def _to_local_date(value: date | datetime, tz: tzinfo) -> date:
    if isinstance(value, datetime):
        if value.tzinfo is None:  # floating time: already local
            return value.date()
        return value.astimezone(tz).date()
    return value


def _span(start: date | datetime, end: date | datetime | None, tz: tzinfo) -> tuple[date, date]:
    first = _to_local_date(start, tz)
    if end is None:
        return first, first + timedelta(days=1)
    last = _to_local_date(end, tz)
    if last <= first:  # a same-day date-time event still takes that night
        last = first + timedelta(days=1)
    return first, last


def _value(component: Any, name: str) -> Any:
    prop = component.get(name)
    return getattr(prop, "dt", None) if prop is not None else None


def parse_feed(data: bytes, *, tz: tzinfo, today: date, horizon_days: int = 730) -> list[FeedEvent]:
    """Every blocking event in the feed that ends after ``today``."""
    if not data.strip():
        raise FeedError("the feed is empty")
    try:
        calendar = Calendar.from_ical(data)
    except Exception as exc:  # icalendar raises ValueError and friends on bad input
        raise FeedError(f"not a readable iCalendar feed: {exc}") from exc
    if getattr(calendar, "name", "") != "VCALENDAR":
        raise FeedError("not an iCalendar feed (no VCALENDAR)")
    horizon = today + timedelta(days=horizon_days)
    events: dict[str, FeedEvent] = {}
    # One recurrence can still cost seconds (a filter no date matches makes dateutil
    # walk to year 9999 before giving up), so the whole feed has a CPU budget, far
    # inside the import task's soft time limit.
    deadline = time.monotonic() + PARSE_BUDGET_SECONDS
    try:
        for component in calendar.walk("VEVENT"):
            if time.monotonic() > deadline:
                raise FeedError(f"the feed took over {PARSE_BUDGET_SECONDS}s to expand")
            for event in _expand(component, tz=tz, today=today, horizon=horizon):
                if event.end > today and event.start < horizon:
                    events[event.uid] = event
    except FeedError:
        raise
    except Exception as exc:
        raise FeedError(f"malformed event in the feed: {exc}") from exc
    return sorted(events.values(), key=lambda e: (e.start, e.uid))


def _expand(component: Any, *, tz: tzinfo, today: date, horizon: date) -> list[FeedEvent]:
    status = str(component.get("STATUS", "")).upper()
    if status == "CANCELLED" or str(component.get("TRANSP", "")).upper() == "TRANSPARENT":
        return []
    start = _value(component, "DTSTART")
    if start is None:
        raise FeedError("an event has no DTSTART")
    end = _value(component, "DTEND")
    if end is None and component.get("DURATION") is not None:
        end = start + component.get("DURATION").dt
    summary = str(component.get("SUMMARY", "")).strip()[:200]
    uid = str(component.get("UID", "")).strip()
    if not uid:
        # No UID (seen in hand-made feeds): derive a stable one from the content.
        digest = hashlib.sha256(f"{start}|{end}|{summary}".encode()).hexdigest()[:24]
        uid = f"nouid-{digest}"
    first, last = _span(start, end, tz)
    rule = component.get("RRULE")
    if rule is None:
        return [FeedEvent(uid=uid[:255], start=first, end=last, summary=summary)]
    length = last - first
    anchor = datetime(first.year, first.month, first.day)
    window_start = datetime.combine(today - length, datetime.min.time())
    window_end = datetime.combine(horizon, datetime.min.time())
    recurrence = rrulestr(rule.to_ical().decode(), dtstart=anchor, ignoretz=True)
    if not isinstance(recurrence, rrule) or recurrence._freq > DAILY:
        # Blocks are whole nights: an hourly/minutely/secondly rule is not a real
        # feed, and expanding one from an old DTSTART burns the task's time limit.
        raise FeedError("recurring events more frequent than daily are not supported")
    changes: dict[str, Any] = {}
    until = recurrence._until
    # Stop the expansion at the horizon, however far the rule's own UNTIL (or COUNT) is.
    changes["until"] = min(until, window_end) if until else window_end
    if recurrence._count is None and recurrence._freq in (DAILY, WEEKLY) and anchor < window_start:
        # Start near the window instead of walking day by day from an old DTSTART
        # (1900 with a filter that never matches is seconds of CPU). Moving it by
        # whole periods (interval days or weeks) keeps every occurrence in place.
        step = recurrence._interval * (7 if recurrence._freq == WEEKLY else 1)
        changes["dtstart"] = anchor + timedelta(days=(window_start - anchor).days // step * step)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # COUNT with UNTIL: both bound it
        recurrence = recurrence.replace(**changes)
    occurrences = rruleset()
    occurrences.rrule(recurrence)
    for exdate in _exdates(component, tz):
        occurrences.exdate(datetime(exdate.year, exdate.month, exdate.day))
    expanded = []
    # Lazily, from the window's start: never materialise the occurrences before it.
    upcoming = occurrences.xafter(window_start, count=MAX_OCCURRENCES, inc=True)
    for moment in takewhile(lambda moment: moment <= window_end, upcoming):
        day = moment.date()
        expanded.append(
            FeedEvent(
                uid=f"{uid}#{day.isoformat()}"[:255], start=day, end=day + length, summary=summary
            )
        )
    return expanded


def _exdates(component: Any, tz: tzinfo) -> list[date]:
    raw = component.get("EXDATE")
    if raw is None:
        return []
    found = []
    for item in raw if isinstance(raw, list) else [raw]:
        for value in getattr(item, "dts", []):
            found.append(_to_local_date(value.dt, tz))
    return found
