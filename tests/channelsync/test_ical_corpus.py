"""Every calendar the installed icalendar package ships (its tests and fuzz corpus),
through the importer's parse, against ``recurring-ical-events`` as the reference.

For each file: no crash (only FeedError), no feed over the CPU budget, and where
both read it, the nights blocked equal those the reference expands, except where
a deliberate rule of channelsync.feeds.parse applies (applied to the reference here):
TRANSPARENT or CANCELLED occurrences block nothing; a date-time event ending on
its start day blocks that night; VEVENTs sharing a UID with equal SEQUENCE are all
kept (the reference keeps one). Bare components (a lone VEVENT file) are read
inside a VCALENDAR.
"""

from __future__ import annotations

import time
import warnings
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest
import recurring_ical_events

from channelsync.feeds.parse import PARSE_BUDGET_SECONDS, FeedError, parse_feed_report

CORPUS_ROOT = Path(icalendar.__file__).parent / "tests"
CORPUS = sorted(CORPUS_ROOT.rglob("*.ics"))
TZ = ZoneInfo("America/New_York")
HORIZON_DAYS = 730


def test_the_corpus_is_there():
    # Calendars (with the fuzz cases, named fuzz_testcase_*) and bare components.
    assert len(CORPUS) > 100
    assert any("fuzz_testcase" in path.name for path in CORPUS)


def _as_calendar(data: bytes) -> bytes:
    if data.lstrip(b"\xef\xbb\xbf \r\n\t").upper().startswith(b"BEGIN:VCALENDAR"):
        return data
    return (
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//wrap//EN\r\n"
        + data.strip()
        + b"\r\nEND:VCALENDAR\r\n"
    )


def _windows(data: bytes) -> list[date]:
    """Today as the day before the first event (so every calendar has events in the
    horizon), and a fixed day (long-running series seen from far after their start)."""
    days = []
    try:
        for event in icalendar.Calendar.from_ical(data).walk("VEVENT"):
            value = getattr(event.get("DTSTART"), "dt", None)
            if isinstance(value, datetime):
                value = value.date()
            if isinstance(value, date) and 1900 < value.year < 9000:
                days.append(value)
    except Exception:
        pass
    first = min(days) - timedelta(days=1) if days else date(2020, 1, 1)
    return [first, date(2026, 1, 1)]


def _local(value):
    if isinstance(value, datetime):
        return value.date() if value.tzinfo is None else value.astimezone(TZ).date()
    return value


def _reference(data: bytes, today: date) -> tuple[Counter[tuple[date, date]], set[str]] | None:
    """Nights per occurrence as recurring-ical-events expands them; None if it cannot."""
    horizon = today + timedelta(days=HORIZON_DAYS)
    try:
        calendar = icalendar.Calendar.from_ical(data)
        occurrences = recurring_ical_events.of(calendar).between(
            today - timedelta(days=1), horizon + timedelta(days=1)
        )
        spans: Counter[tuple[date, date]] = Counter()
        for occurrence in occurrences:
            if str(occurrence.get("STATUS", "")).upper() == "CANCELLED":
                continue
            if str(occurrence.get("TRANSP", "")).upper() == "TRANSPARENT":
                continue
            start = _local(occurrence["DTSTART"].dt)
            end = _local(occurrence["DTEND"].dt) if occurrence.get("DTEND") else None
            if end is None or end <= start:
                end = start + timedelta(days=1)
            if end > today and start < horizon:
                spans[(start, end)] += 1
    except Exception:
        return None
    cores: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for event in calendar.walk("VEVENT"):
        if event.get("RECURRENCE-ID") is None:
            cores[str(event.get("UID", ""))][str(event.get("SEQUENCE", 0))] += 1
    shared = {uid for uid, seqs in cores.items() if seqs[max(seqs, key=int)] > 1}
    return spans, shared


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(CORPUS_ROOT)))
def test_a_shipped_calendar_imports_like_the_reference_expansion(path):
    data = _as_calendar(path.read_bytes())
    for today in _windows(data):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            started = time.process_time()
            try:
                ours = parse_feed_report(data, tz=TZ, today=today, horizon_days=HORIZON_DAYS)
            except FeedError:
                ours = None  # a readable error, not a crash
            spent = time.process_time() - started
            reference = _reference(data, today)
        assert spent < PARSE_BUDGET_SECONDS
        if ours is None or reference is None:
            continue
        expected, shared_uids = reference
        got = Counter((event.start, event.end) for event in ours.events)
        if shared_uids:
            # Equal-SEQUENCE VEVENTs of one UID: the reference keeps one, we keep all.
            assert not expected - got
            extra = got - expected
            assert all(
                event.uid.split("#")[0] in shared_uids
                for event in ours.events
                if (event.start, event.end) in extra
            )
        else:
            assert got == expected, f"{path.name} seen from {today}"
