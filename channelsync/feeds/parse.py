"""Parse a channel's iCal feed into blocked date spans (property-local, end exclusive).

Real feeds: Airbnb sends ``VALUE=DATE`` events ("Reserved", "Airbnb (Not
available)"), future dates only; Booking.com "CLOSED - Not available"; Vrbo
"Reserved"/"Blocked" with UIDs that may change when dates change. Some feeds use
date-times with a TZID or UTC; those are converted to the property's time zone
and the nights they cover are blocked.

Recurrences (RRULE, RDATE, EXDATE, RECURRENCE-ID overrides) are expanded by
``recurring-ical-events`` within the horizon; ``X-WR-TIMEZONE`` (Google Calendar
exports) is applied first with ``x-wr-timezone``, as Google, Apple and Outlook
read it. A floating time (no zone, no X-WR-TIMEZONE) is the property's local time.

Rules where the import deliberately differs from a plain expansion:

- ``TRANSP:TRANSPARENT`` and ``STATUS:CANCELLED`` occurrences block nothing;
- a date-time event that starts and ends on the same local day blocks that night;
- several VEVENTs sharing a UID without RECURRENCE-ID: the highest SEQUENCE is the
  revision that counts (as in ``recurring-ical-events``), but those of equal SEQUENCE
  are distinct stays (seen in real feeds) and each one is kept;
- a rule more frequent than daily (blocks are whole nights) is an unreadable event;
- a series stops at ``MAX_OCCURRENCES`` occurrences inside the horizon.

Keys (``FeedEvent.uid``, what a block is upserted by): the UID for a plain event
whose UID no other VEVENT shares (so an event moved by the channel moves its block);
otherwise ``UID#<local date of RECURRENCE-ID or occurrence start>`` and, if two
occurrences still share a key, ``#2``, ``#3``... in start order.

Each UID is expanded on its own: an event that cannot be read is reported as a
``FeedProblem`` (the rest of the feed imports; the importer keeps that UID's blocks)
unless no event at all could be read, which is a ``FeedError`` like anything that
is not a readable calendar.
"""

from __future__ import annotations

import hashlib
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

import recurring_ical_events
import x_wr_timezone
from icalendar import Calendar

MAX_OCCURRENCES = 2000
PARSE_BUDGET_SECONDS = 10
EVENT_BUDGET_SECONDS = 2
SUB_DAILY = {"HOURLY", "MINUTELY", "SECONDLY"}
# Properties an event's nights depend on: one icalendar could not parse makes the event
# unreadable (a broken DESCRIPTION does not).
TIMING = {"DTSTART", "DTEND", "DURATION", "RRULE", "RDATE", "EXDATE", "RECURRENCE-ID"}


class FeedError(ValueError):
    """The feed cannot be read as iCalendar; the message is shown on the channel."""


@dataclass(frozen=True)
class FeedEvent:
    uid: str
    start: date
    end: date  # exclusive
    summary: str


@dataclass(frozen=True)
class FeedProblem:
    """One event (all VEVENTs of one UID) that could not be read."""

    uid: str
    message: str


@dataclass
class FeedResult:
    events: list[FeedEvent] = field(default_factory=list)
    problems: list[FeedProblem] = field(default_factory=list)


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


def _text(component: Any, name: str) -> str:
    return str(component.get(name, "")).strip()


def _blocks(component: Any) -> bool:
    return (
        _text(component, "STATUS").upper() != "CANCELLED"
        and _text(component, "TRANSP").upper() != "TRANSPARENT"
    )


def _sequence(component: Any) -> int:
    try:
        return int(str(component.get("SEQUENCE", 0)))
    except ValueError:
        return 0


def _uid_of(component: Any) -> str:
    uid = _text(component, "UID")
    if uid:
        return uid
    # No UID (seen in hand-made feeds): derive a stable one from the content.
    raw = (
        f"{component.get('DTSTART', '') and component['DTSTART'].to_ical()!r}|"
        f"{component.get('DTEND', '') and component['DTEND'].to_ical()!r}|"
        f"{_text(component, 'SUMMARY')}"
    )
    return f"nouid-{hashlib.sha256(raw.encode()).hexdigest()[:24]}"


def parse_feed(data: bytes, *, tz: tzinfo, today: date, horizon_days: int = 730) -> list[FeedEvent]:
    """Every blocking occurrence in the feed that ends after ``today``."""
    return parse_feed_report(data, tz=tz, today=today, horizon_days=horizon_days).events


def parse_feed_report(
    data: bytes, *, tz: tzinfo, today: date, horizon_days: int = 730
) -> FeedResult:
    """The blocking occurrences, and the events that could not be read."""
    if not data.strip():
        raise FeedError("the feed is empty")
    try:
        calendar = Calendar.from_ical(data)
    except Exception as exc:  # icalendar raises ValueError and friends on bad input
        raise FeedError(f"not a readable iCalendar feed: {exc}") from exc
    if getattr(calendar, "name", "") != "VCALENDAR":
        raise FeedError("not an iCalendar feed (no VCALENDAR)")
    if str(calendar.get("CALSCALE", "GREGORIAN")).upper() != "GREGORIAN":
        raise FeedError("only Gregorian calendars are supported")
    try:
        calendar = x_wr_timezone.to_standard(calendar)
    except Exception as exc:
        raise FeedError(f"unreadable X-WR-TIMEZONE: {exc}") from exc
    horizon = today + timedelta(days=horizon_days)
    groups: dict[str, list[Any]] = defaultdict(list)
    for component in calendar.walk("VEVENT"):
        groups[_uid_of(component)].append(component)
    result = FeedResult()
    read = 0
    # One recurrence can still cost a lot of CPU: a filter no date matches
    # (BYMONTH=2;BYMONTHDAY=30) makes dateutil walk on to the year 9999, whatever
    # UNTIL says. So each event has a CPU budget (over it, it is an unreadable event)
    # and the whole feed one, far inside the import task's soft time limit.
    deadline = time.process_time() + PARSE_BUDGET_SECONDS
    for uid, components in groups.items():
        label = _label(components)  # before expansion (which may move DTSTART)
        remaining = deadline - time.process_time()
        if remaining <= 0:
            raise FeedError(f"the feed took over {PARSE_BUDGET_SECONDS}s of CPU to expand")
        try:
            with _cpu_limit(min(remaining, EVENT_BUDGET_SECONDS)):
                expanded = _expand_uid(uid, components, tz=tz, today=today, horizon=horizon)
            result.events.extend(expanded)
            read += 1
        except _OverBudget:
            if time.process_time() >= deadline:
                raise FeedError(
                    f"the feed took over {PARSE_BUDGET_SECONDS}s of CPU to expand"
                ) from None
            error = FeedError(f"took over {EVENT_BUDGET_SECONDS}s of CPU to expand")
            result.problems.append(FeedProblem(uid=uid[:255], message=f"{label}: {error}"[:500]))
        except Exception as exc:
            result.problems.append(FeedProblem(uid=uid[:255], message=f"{label}: {exc}"[:500]))
    if result.problems and not read:
        raise FeedError(f"no readable event in the feed: {result.problems[0].message}")
    result.events.sort(key=lambda e: (e.start, e.uid))
    return result


class _OverBudget(BaseException):
    """Raised from the CPU timer's signal handler (a BaseException: no library
    ``except Exception`` swallows it)."""


@contextmanager
def _cpu_limit(seconds: float) -> Iterator[None]:
    """Interrupt the block after ``seconds`` of process CPU time (SIGPROF).

    Signals can only be handled on the main thread (a Celery prefork worker runs
    tasks there); elsewhere the block runs unbounded and only the per-feed deadline,
    checked between events, applies.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def over(signum: int, frame: Any) -> None:
        raise _OverBudget

    previous = signal.signal(signal.SIGPROF, over)
    signal.setitimer(signal.ITIMER_PROF, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def _label(components: list[Any]) -> str:
    first = components[0]
    summary = _text(first, "SUMMARY")[:80]
    start = first.get("DTSTART")
    if isinstance(start, list):
        when = "several DTSTART"
    elif hasattr(start, "to_ical"):
        when = start.to_ical().decode(errors="replace")
    else:
        when = "no DTSTART"
    label = f"{summary!r} " if summary else ""
    return f"event {_uid_of(first)!r} {label}({when})"


def _cores_and_overrides(components: list[Any]) -> tuple[list[Any], list[Any]]:
    cores = [c for c in components if c.get("RECURRENCE-ID") is None]
    overrides = [c for c in components if c.get("RECURRENCE-ID") is not None]
    if cores:
        top = max(_sequence(c) for c in cores)
        cores = [c for c in cores if _sequence(c) == top]  # lower SEQUENCE: older revisions
    return cores, overrides


def _prepare_core(core: Any, *, today: date, horizon: date) -> None:
    """Refuse sub-daily rules; bound every rule to the window (CPU budget)."""
    if core.get("DTSTART") is None:
        raise FeedError("no DTSTART")
    if isinstance(core.get("DTSTART"), list):
        raise FeedError("more than one DTSTART")
    rules = core.get("RRULE")
    rules = rules if isinstance(rules, list) else ([rules] if rules is not None else [])
    freqs = {str(f).upper() for rule in rules for f in rule.get("FREQ", [])}
    if freqs & SUB_DAILY:
        # Blocks are whole nights: an hourly/minutely/secondly rule is not a real
        # feed, and expanding one from an old DTSTART burns the task's time limit.
        raise FeedError("recurring events more frequent than daily are not supported")
    start = core["DTSTART"].dt
    # A filter no date matches (BYMONTH=2;BYMONTHDAY=30) makes dateutil walk on to
    # the year 9999 (seconds of CPU for a daily rule): stop every rule just past the
    # horizon, however far its own UNTIL (or COUNT) is. Nothing after it is read.
    stop = horizon + timedelta(days=1)
    if isinstance(start, datetime):
        stop_value: date = datetime(
            stop.year, stop.month, stop.day, tzinfo=UTC if start.tzinfo is not None else None
        )
    else:
        stop_value = stop
    for rule in rules:
        until = (rule.get("UNTIL") or [None])[0]
        until_day = until.date() if isinstance(until, datetime) else until
        if until_day is None or until_day > stop:
            rule["UNTIL"] = [stop_value]
    if len(rules) != 1 or freqs - {"DAILY", "WEEKLY"} or rules[0].get("COUNT"):
        return
    first = start.date() if isinstance(start, datetime) else start
    window_start = today - timedelta(days=400)
    if first >= window_start:
        return
    # Walking day by day from 1900 with a filter that never matches is seconds of
    # CPU: move DTSTART by whole periods (interval days or weeks), which keeps
    # every occurrence in the window in place (EXDATE, RDATE and RECURRENCE-ID are
    # absolute). The old DTSTART itself is far before the window.
    interval = int(rules[0].get("INTERVAL", [1])[0] or 1)
    step = interval * (7 if "WEEKLY" in freqs else 1)
    shift = timedelta(days=(window_start - first).days // step * step)
    end = core.get("DTEND")
    params = dict(core["DTSTART"].params)
    core.pop("DTSTART")
    core.add("DTSTART", start + shift, parameters=params)
    if end is not None:
        end_params = dict(end.params)
        core.pop("DTEND")
        core.add("DTEND", end.dt + shift, parameters=end_params)


def _expand_uid(
    uid: str, components: list[Any], *, tz: tzinfo, today: date, horizon: date
) -> list[FeedEvent]:
    for component in components:
        for name, message in getattr(component, "errors", []):
            if str(name).upper() in TIMING:
                raise FeedError(f"unreadable {name}: {message}")
    cores, overrides = _cores_and_overrides(components)
    for core in cores:
        _prepare_core(core, today=today, horizon=horizon)
    for override in overrides:
        if override.get("DTSTART") is None:
            raise FeedError("an override (RECURRENCE-ID) has no DTSTART")
    # Each core of equal SEQUENCE is its own series; overrides go with the first.
    series = [[core] for core in cores] or [[]]
    series[0].extend(overrides)
    plain = len(series) == 1 and len(series[0]) == 1 and not _recurs(series[0][0])
    found: list[tuple[date, date, str, date]] = []  # start, end, summary, key date
    for members in series:
        mini = Calendar()
        for member in members:
            mini.add_component(member)
        query = recurring_ical_events.of(mini)
        occurrences = query.between(today - timedelta(days=1), horizon + timedelta(days=1))
        for occurrence in occurrences[:MAX_OCCURRENCES]:
            if not _blocks(occurrence):
                continue
            start, end = _span(_value(occurrence, "DTSTART"), _value(occurrence, "DTEND"), tz)
            if end <= today or start >= horizon:
                continue
            recurrence_id = _value(occurrence, "RECURRENCE-ID")
            key_day = _to_local_date(recurrence_id, tz) if recurrence_id is not None else start
            found.append((start, end, _text(occurrence, "SUMMARY")[:200], key_day))
    found.sort()
    events = []
    used: dict[str, int] = {}
    for start, end, summary, key_day in found:
        key = uid if plain else f"{uid}#{key_day.isoformat()}"
        used[key] = used.get(key, 0) + 1
        if used[key] > 1:
            key = f"{key}#{used[key]}"
        events.append(FeedEvent(uid=key[:255], start=start, end=end, summary=summary))
    return events


def _recurs(component: Any) -> bool:
    return component.get("RRULE") is not None or component.get("RDATE") is not None
