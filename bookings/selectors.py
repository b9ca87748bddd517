from __future__ import annotations

import calendar
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Exists, F, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce

from bookings.choices import OCCUPYING_STATUSES, CalendarEntryKind, DayStatus
from bookings.models import Block, Booking, CalendarEntry, LedgerEntry, Season
from pms.models import Property
from tenants.models import Tenant


def booking_get(*, tenant: Tenant, booking_id: int) -> Booking:
    return Booking.objects.select_related("property", "guest").get(tenant=tenant, pk=booking_id)


def booking_list(*, tenant: Tenant) -> QuerySet[Booking]:
    return Booking.objects.filter(tenant=tenant).select_related("property", "guest")


def booking_conflicts(
    *, property_id: int, check_in: date, check_out: date, exclude_booking_id: int | None = None
) -> QuerySet[Booking]:
    """Occupying bookings overlapping [check_in, check_out) on the property."""
    queryset = Booking.objects.filter(
        property_id=property_id,
        status__in=OCCUPYING_STATUSES,
        check_in__lt=check_out,
        check_out__gt=check_in,
    )
    if exclude_booking_id is not None:
        queryset = queryset.exclude(pk=exclude_booking_id)
    return queryset


def block_conflicts(*, property_id: int, start: date, end: date) -> QuerySet[Block]:
    """Active blocks overlapping [start, end) on the property."""
    return Block.objects.filter(
        property_id=property_id, is_active=True, start__lt=end, end__gt=start
    )


def bookable_properties(
    *,
    tenant: Tenant,
    check_in: date | None = None,
    check_out: date | None = None,
    guests: int = 1,
    today: date | None = None,
) -> QuerySet[Property]:
    """The tenant's active properties that fit ``guests``, by name; with dates, only those
    that can take the stay [check_in, check_out): no occupying booking or active block
    overlaps it, its length meets the check-in night's season rules (else the
    property's, as ``bookings.pricing.nights_allowed``) and it ends within the
    property's horizon from ``today``. One query (its count another), any number of
    properties: the rules are SQL, not a loop. The booking services check all of it
    again, under the property's lock, when the guest books.
    """
    queryset = Property.objects.filter(
        tenant=tenant, is_active=True, max_guests__gte=guests
    ).order_by("name", "pk")
    if check_in is None or check_out is None:
        return queryset
    nights = (check_out - check_in).days
    days_ahead = (check_out - (today or date.today())).days
    season = Season.objects.filter(property=OuterRef("pk"), start__lte=check_in, end__gt=check_in)
    within_horizon = Q(booking_horizon_days__gte=days_ahead)
    if days_ahead <= settings.BOOKING_HORIZON_DAYS:
        within_horizon |= Q(booking_horizon_days__isnull=True)
    return (
        queryset.filter(within_horizon)
        .alias(
            booked=Exists(
                Booking.objects.filter(
                    property=OuterRef("pk"),
                    status__in=OCCUPYING_STATUSES,
                    check_in__lt=check_out,
                    check_out__gt=check_in,
                )
            ),
            blocked=Exists(
                Block.objects.filter(
                    property=OuterRef("pk"), is_active=True, start__lt=check_out, end__gt=check_in
                )
            ),
            nights_min=Coalesce(Subquery(season.values("min_nights")[:1]), F("min_nights")),
            nights_max=Coalesce(Subquery(season.values("max_nights")[:1]), F("max_nights")),
        )
        .filter(booked=False, blocked=False, nights_min__lte=nights, nights_max__gte=nights)
    )


def property_availability(*, property: Property, start: date, end: date) -> list[tuple[date, bool]]:
    """Each night in [start, end) and whether it can be booked. Two queries, any range.

    Reads the bookings and blocks themselves (the source of truth), not the
    calendar projection, so a guest never sees a night as free that is taken.
    """
    spans = [
        *booking_conflicts(property_id=property.pk, check_in=start, check_out=end).values_list(
            "check_in", "check_out"
        ),
        *block_conflicts(property_id=property.pk, start=start, end=end).values_list("start", "end"),
    ]
    nights = [start + timedelta(days=offset) for offset in range((end - start).days)]
    return [(night, not any(s <= night < e for s, e in spans)) for night in nights]


@dataclass(frozen=True)
class CalendarDay:
    day: date
    status: str
    entry: CalendarEntry | None
    in_month: bool


def property_calendar_month(
    *, tenant: Tenant | None, property: Property, year: int, month: int
) -> list[list[CalendarDay]]:
    """Weeks (Monday first) of the month grid, each day with its status and entry.

    Reads the calendar projection, i.e. what the calendar handler has applied.
    """
    if tenant is not None and property.tenant_id != tenant.pk:
        raise Property.DoesNotExist
    weeks = calendar.Calendar(firstweekday=0).monthdatescalendar(year, month)
    first, last = weeks[0][0], weeks[-1][-1] + timedelta(days=1)
    entries = list(
        CalendarEntry.objects.filter(
            property=property, active=True, start__lt=last, end__gt=first
        ).select_related("booking", "booking__guest")
    )
    grid: list[list[CalendarDay]] = []
    for week in weeks:
        row = []
        for day in week:
            entry = next((e for e in entries if e.start <= day < e.end), None)
            if entry is None:
                status = DayStatus.AVAILABLE
            elif entry.kind == CalendarEntryKind.BOOKING:
                status = DayStatus.BOOKED
            else:
                status = DayStatus.BLOCKED
            row.append(CalendarDay(day, status, entry, day.month == month))
        grid.append(row)
    return grid


@dataclass(frozen=True)
class Statement:
    property: Property
    month: date  # its first day
    entries: QuerySet[LedgerEntry]  # in date order, with their booking
    totals: Sequence[Mapping[str, Any]]  # {"kind": ..., "total": ...} per kind, by kind
    net: Decimal  # the guest balance movement: the sum of the totals


def ledger_statement(*, property: Property, month: date) -> Statement:
    """A property's ledger for the calendar month that ``month`` (its first day) starts."""
    following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    entries = (
        LedgerEntry.objects.filter(
            property=property, entry_date__gte=month, entry_date__lt=following
        )
        .select_related("booking")
        .order_by("entry_date", "pk")
    )
    totals = list(entries.order_by().values("kind").annotate(total=Sum("amount")).order_by("kind"))
    net = sum((row["total"] for row in totals), Decimal("0"))
    return Statement(property=property, month=month, entries=entries, totals=totals, net=net)
