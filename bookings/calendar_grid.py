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
class CalendarCell:
    night: date
    column: int
    free: bool  # no booking or block that night

    @property
    def morning_after(self) -> date:
        return self.night + timedelta(days=1)


@dataclass(frozen=True)
class CalendarRow:
    property: Property
    bars: Sequence[CalendarBar]
    cells: Sequence[CalendarCell]  # one per night of the window


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
    """One row per home in ``properties`` (order kept), for nights [start, start + days)."""
    end = start + timedelta(days=days)
    ids = [prop.pk for prop in properties]
    bookings = list(
        Booking.objects.filter(
            property_id__in=ids,
            status__in=OCCUPYING_STATUSES,
            check_in__lt=end,
            check_out__gt=start,
        )
        .select_related("guest")
        .only("pk", "property_id", "check_in", "check_out", "status", "source", "guest__name")
    )
    blocks = list(
        Block.objects.filter(
            property_id__in=ids, is_active=True, start__lt=end, end__gt=start
        ).only("pk", "property_id", "start", "end", "label", "source")
    )
    by_property: dict[int, tuple[list[Booking], list[Block]]] = {pk: ([], []) for pk in ids}
    for booking in bookings:
        by_property[booking.property_id][0].append(booking)
    for block in blocks:
        by_property[block.property_id][1].append(block)

    rows = []
    for prop in properties:
        stays, closed = by_property[prop.pk]
        bars = []
        for booking in sorted(stays, key=lambda b: b.check_in):
            clash = any(b.start < booking.check_out and b.end > booking.check_in for b in closed)
            bars.append(
                _bar(
                    kind="booking",
                    object_id=booking.pk,
                    label=booking.guest.name
                    + (" (request)" if booking.status == BookingStatus.REQUESTED else ""),
                    source=booking.source,
                    status=booking.status,
                    first=booking.check_in,
                    end=booking.check_out,
                    start=start,
                    days=days,
                    conflict=clash,
                )
            )
        for block in sorted(closed, key=lambda b: b.start):
            clash = any(s.check_in < block.end and s.check_out > block.start for s in stays)
            bars.append(
                _bar(
                    kind="block",
                    object_id=block.pk,
                    label=block.label or "Blocked",
                    source=block.source,
                    status="blocked",
                    first=block.start,
                    end=block.end,
                    start=start,
                    days=days,
                    conflict=clash,
                )
            )
        taken = [False] * days
        for bar in bars:
            for column in range(bar.column - 1, bar.column - 1 + bar.span):
                taken[column] = True
        cells = [
            CalendarCell(night=start + timedelta(days=index), column=index + 1, free=not busy)
            for index, busy in enumerate(taken)
        ]
        rows.append(CalendarRow(property=prop, bars=bars, cells=cells))
    return rows
