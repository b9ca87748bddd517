"""Property-local wall-clock times as aware datetimes (zoneinfo; DST-correct)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo


def as_zone(value: tzinfo | str) -> tzinfo:
    return ZoneInfo(value) if isinstance(value, str) else value


def local_moment(day: date, at: time, zone: tzinfo | str) -> datetime:
    """``day`` at wall-clock ``at`` in ``zone``, as an aware UTC datetime.

    A wall time that does not exist (the hour skipped when clocks go forward)
    maps to the same instant one hour later on the new offset; an ambiguous one
    (clocks go back) to its first occurrence (``fold=0``): what people expect.
    """
    local = datetime.combine(day, at).replace(tzinfo=as_zone(zone))
    return local.astimezone(UTC)


def local_now(zone: tzinfo | str, now: datetime) -> datetime:
    return now.astimezone(as_zone(zone))


def end_of_day(day: date, zone: tzinfo | str) -> datetime:
    return local_moment(day + timedelta(days=1), time(0, 0), zone)
