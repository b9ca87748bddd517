"""The multi-property calendar: homes as rows, days as columns, stays and blocks as bars.

Three queries whatever the number of homes on the page: the homes, their bookings and
their blocks in the window. A block over a booking is a conflict (a channel's imported
block the guest's stay already holds): both bars are marked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from bookings.choices import OCCUPYING_STATUSES, BookingStatus
from bookings.models import Block, Booking
from pms.models import Property


@dataclass(frozen=True)
class CalendarBar:
    kind: str  # "booking" or "block"
    object_id: int
    label: str
    source: str  # BookingSource, or the block's source ("manual", "channel"...)
    status: str
    column: int  # first day's column, 1-based within the window
    span: int  # days shown
    continues_before: bool
    continues_after: bool
    conflict: bool


@dataclass(frozen=True)
class CalendarRow:
    property: Property
    bars: Sequence[CalendarBar]
    free: Sequence[bool]  # per night of the window: no booking or block holds it


def calendar_days(start: date, days: int) -> list[date]:
    return [start + timedelta(days=offset) for offset in range(days)]


def _bar(
    *,
    kind: str,
    object_id: int,
    label: str,
    source: str,
    status: str,
    first: date,
    end: date,
    start: date,
    days: int,
    conflict: bool,
) -> CalendarBar:
    window_end = start + timedelta(days=days)
    shown_from, shown_to = max(first, start), min(end, window_end)
    return CalendarBar(
        kind=kind,
        object_id=object_id,
        label=label,
        source=source,
        status=status,
        column=(shown_from - start).days + 1,
        span=max((shown_to - shown_from).days, 1),
        continues_before=first < start,
        continues_after=end > window_end,
        conflict=conflict,
    )


def calendar_rows(*, properties: Sequence[Property], start: date, days: int) -> list[CalendarRow]:
    """One row per home in ``properties`` (order kept), for nights [start, start + days).

    A page of 100 homes holds about 900 stays and blocks: they are read as tuples, not
    model instances, which was most of the page's time (``make bench-dashboard``).
    """
    end = start + timedelta(days=days)
    ids = [prop.pk for prop in properties]
    stays_of: dict[int, list[tuple[int, date, date, str, str, str]]] = {pk: [] for pk in ids}
    closed_of: dict[int, list[tuple[int, date, date, str, str]]] = {pk: [] for pk in ids}
    for property_id, *stay in (
        Booking.objects.filter(
            property_id__in=ids,
            status__in=OCCUPYING_STATUSES,
            check_in__lt=end,
            check_out__gt=start,
        )
        .order_by("check_in", "pk")
        .values_list(
            "property_id", "pk", "check_in", "check_out", "status", "source", "guest__name"
        )
    ):
        stays_of[property_id].append(tuple(stay))  # type: ignore[arg-type]
    for property_id, *block in (
        Block.objects.filter(property_id__in=ids, is_active=True, start__lt=end, end__gt=start)
        .order_by("start", "pk")
        .values_list("property_id", "pk", "start", "end", "label", "source")
    ):
        closed_of[property_id].append(tuple(block))  # type: ignore[arg-type]

    rows = []
    for prop in properties:
        stays, closed = stays_of[prop.pk], closed_of[prop.pk]
        bars = [
            _bar(
                kind="booking",
                object_id=pk,
                label=name + (" (request)" if status == BookingStatus.REQUESTED else ""),
                source=source,
                status=status,
                first=check_in,
                end=check_out,
                start=start,
                days=days,
                conflict=bool(closed) and _overlaps(check_in, check_out, closed),
            )
            for pk, check_in, check_out, status, source, name in stays
        ]
        bars += [
            _bar(
                kind="block",
                object_id=pk,
                label=label or "Blocked",
                source=source,
                status="blocked",
                first=block_start,
                end=block_end,
                start=start,
                days=days,
                conflict=bool(stays) and _overlaps(block_start, block_end, stays),
            )
            for pk, block_start, block_end, label, source in closed
        ]
        free = [True] * days
        for bar in bars:
            free[bar.column - 1 : bar.column - 1 + bar.span] = [False] * bar.span
        rows.append(CalendarRow(property=prop, bars=bars, free=free))
    return rows


def _overlaps(first: date, end: date, others: Sequence[tuple]) -> bool:  # type: ignore[type-arg]
    """Whether [first, end) meets any of ``others`` (tuples of pk, start, end, ...)."""
    return any(other[1] < end and other[2] > first for other in others)
