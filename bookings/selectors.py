from __future__ import annotations

import calendar
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import (
    BooleanField,
    DateTimeField,
    DurationField,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce
from django.utils import timezone

from bookings.choices import (
    OCCUPYING_STATUSES,
    BookingStatus,
    CalendarEntryKind,
    DayStatus,
    MessageSender,
)
from bookings.events import (
    BOOKING_AGGREGATE,
    BOOKING_THREAD_AGGREGATE,
    PAYMENT_AGGREGATE,
    REFUND_AGGREGATE,
)
from bookings.models import Block, Booking, CalendarEntry, GuestMessage, LedgerEntry, Season
from pms.models import DomainEvent, Property
from tenants.models import Tenant


def booking_get(*, tenant: Tenant, booking_id: int) -> Booking:
    return Booking.objects.select_related("property", "guest").get(tenant=tenant, pk=booking_id)


def booking_list(*, tenant: Tenant) -> QuerySet[Booking]:
    return Booking.objects.filter(tenant=tenant).select_related("property", "guest")


def booking_requests_expired(*, now: datetime | None = None) -> QuerySet[Booking]:
    """Requests to book that waited longer than their property's expiry, every tenant's.

    The expiry is the property's ``booking_request_expiry_hours`` or, when empty,
    ``BOOKING_REQUEST_EXPIRY_HOURS``; computed in the query, so a sweep finds every due
    request in one statement (partial index ``booking_requests_by_age``).
    """
    hours = Coalesce(
        F("property__booking_request_expiry_hours"), Value(settings.BOOKING_REQUEST_EXPIRY_HOURS)
    )
    expires_at = ExpressionWrapper(
        F("created_at")
        + ExpressionWrapper(
            hours * Value(timedelta(hours=1), output_field=DurationField()),
            output_field=DurationField(),
        ),
        output_field=DateTimeField(),
    )
    return (
        Booking.objects.filter(status=BookingStatus.REQUESTED)
        .alias(expires_at=expires_at)
        .filter(expires_at__lte=now or timezone.now())
    )


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
    property's horizon from ``today``. One query, any number of properties: the rules
    are SQL, not a loop. The booking services check all of it
    again, under the property's lock, when the guest books.
    """
    queryset = Property.objects.order_by("name", "pk")
    if check_in is None or check_out is None:
        return queryset.filter(tenant=tenant, is_active=True, max_guests__gte=guests)
    return queryset.filter(
        _stay_rules(tenant=tenant, check_in=check_in, check_out=check_out, today=today),
        tenant=tenant,
        is_active=True,
        max_guests__gte=guests,
    )


# The stay rules as one SQL condition on the property row. Each is an uncorrelated
# subquery of the tenant's rows (PostgreSQL hashes it once), not a subquery per
# property, so 200 properties cost what 3 do. Written as SQL because the same
# conditions as ORM subqueries took ~3.5 ms to build and compile per search, a third
# of its time (bench/search.py); tests/bookings/test_property_search.py pins each rule.
_STAY_RULES_SQL = """
{property}.id NOT IN (
    SELECT property_id FROM {booking}
     WHERE tenant_id = %(tenant)s AND status = ANY(%(occupying)s)
       AND check_in < %(check_out)s AND check_out > %(check_in)s)
AND {property}.id NOT IN (
    SELECT property_id FROM {block}
     WHERE tenant_id = %(tenant)s AND is_active
       AND start < %(check_out)s AND "end" > %(check_in)s)
AND COALESCE({property}.booking_horizon_days, %(default_horizon)s) >= %(days_ahead)s
AND {property}.id NOT IN (
    SELECT property_id FROM {season}
     WHERE tenant_id = %(tenant)s AND start <= %(check_in)s AND "end" > %(check_in)s
       AND (min_nights > %(nights)s OR max_nights < %(nights)s))
AND ({property}.min_nights <= %(nights)s OR {property}.id IN (
    SELECT property_id FROM {season}
     WHERE tenant_id = %(tenant)s AND start <= %(check_in)s AND "end" > %(check_in)s
       AND min_nights IS NOT NULL))
AND ({property}.max_nights >= %(nights)s OR {property}.id IN (
    SELECT property_id FROM {season}
     WHERE tenant_id = %(tenant)s AND start <= %(check_in)s AND "end" > %(check_in)s
       AND max_nights IS NOT NULL))
"""


def _stay_rules(*, tenant: Tenant, check_in: date, check_out: date, today: date | None) -> Any:
    """No occupying booking or active block overlaps the stay; it ends within the
    horizon; its length meets the check-in night's season's min/max nights where the
    season sets them, else the property's (as ``bookings.pricing.nights_allowed``)."""
    sql = _STAY_RULES_SQL.format(
        property=Property._meta.db_table,
        booking=Booking._meta.db_table,
        block=Block._meta.db_table,
        season=Season._meta.db_table,
    )
    # RawSQL takes positional parameters: name them here, in the order they appear.
    values = {
        "tenant": tenant.pk,
        "occupying": [str(status) for status in OCCUPYING_STATUSES],
        "check_in": check_in,
        "check_out": check_out,
        "default_horizon": settings.BOOKING_HORIZON_DAYS,
        "days_ahead": (check_out - (today or date.today())).days,
        "nights": (check_out - check_in).days,
    }
    names = re.findall(r"%\((\w+)\)s", sql)
    return RawSQL(re.sub(r"%\(\w+\)s", "%s", sql), [values[n] for n in names], BooleanField())


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


def bookings_awaiting_reply() -> QuerySet[Booking]:
    """Bookings whose guest wrote last: nobody has answered yet. Oldest wait first.

    Each carries ``last_guest_message``, the body of the guest's latest message.
    """
    last_guest_message = (
        GuestMessage.objects.filter(booking=OuterRef("pk"), sender=MessageSender.GUEST)
        .order_by("-created_at", "-pk")
        .values("body")[:1]
    )
    return (
        Booking.objects.filter(awaiting_reply_since__isnull=False)
        .annotate(last_guest_message=Subquery(last_guest_message))
        .order_by("awaiting_reply_since", "pk")
    )


def booking_story_events(booking: Booking) -> list[DomainEvent]:
    """Every event about the booking: its own, its thread's, its payments' and refunds'."""
    about = (
        Q(aggregate_type=BOOKING_AGGREGATE, aggregate_id=str(booking.pk))
        | Q(aggregate_type=BOOKING_THREAD_AGGREGATE, aggregate_id=str(booking.pk))
        | Q(
            aggregate_type=PAYMENT_AGGREGATE,
            aggregate_id__in=[str(pk) for pk in booking.payments.values_list("pk", flat=True)],
        )
        | Q(
            aggregate_type=REFUND_AGGREGATE,
            aggregate_id__in=[str(pk) for pk in booking.refunds.values_list("pk", flat=True)],
        )
    )
    return list(
        DomainEvent.objects.filter(about, tenant_id=booking.tenant_id).order_by(
            "created_at", "sequence"
        )
    )
