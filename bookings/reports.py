"""Monthly figures per home: occupancy, ADR, RevPAR, revenue by channel, cancellations.

Set-based: one query per figure family, whatever the number of homes and bookings. A
stay that crosses a month counts in each month for the nights it spends there, and its
accommodation revenue is shared out per night (accommodation / nights).

- occupancy = nights sold / nights in the month (per home);
- ADR (average daily rate) = accommodation revenue / nights sold;
- RevPAR = accommodation revenue / nights in the month (ADR times occupancy).
Sold: confirmed, checked in or out (a request is not sold yet; a no-show paid for it).
"""

from __future__ import annotations

import builtins
import calendar
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Count, DecimalField, IntegerField, Sum
from django.db.models.expressions import RawSQL

from bookings.choices import BookingSource, BookingStatus, LedgerKind
from bookings.models import Block, Booking, LedgerEntry
from pms.models import Property

SOLD = (
    BookingStatus.CONFIRMED,
    BookingStatus.CHECKED_IN,
    BookingStatus.CHECKED_OUT,
    BookingStatus.NO_SHOW,
)
CENT = Decimal("0.01")


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, ROUND_HALF_UP)


@dataclass
class HomeMonth:
    property: Property
    nights: int  # in the month
    sold: int = 0
    blocked: int = 0
    revenue: Decimal = Decimal("0.00")  # accommodation, shared out per night
    by_channel: dict[str, Decimal] = field(default_factory=dict)
    cancellations: int = 0
    cancellation_fees: Decimal = Decimal("0.00")

    @builtins.property
    def occupancy(self) -> Decimal:
        return _money(Decimal(self.sold * 100) / self.nights) if self.nights else Decimal("0")

    @builtins.property
    def adr(self) -> Decimal:
        return _money(self.revenue / self.sold) if self.sold else Decimal("0.00")

    @builtins.property
    def revpar(self) -> Decimal:
        return _money(self.revenue / self.nights) if self.nights else Decimal("0.00")


@dataclass(frozen=True)
class MonthReport:
    month: date
    homes: Sequence[HomeMonth]
    channels: Sequence[str]  # sources with revenue this month, in BookingSource order

    def _sum(self, name: str) -> Decimal:
        return sum((getattr(home, name) for home in self.homes), Decimal("0"))

    @property
    def nights(self) -> int:
        return sum(home.nights for home in self.homes)

    @property
    def sold(self) -> int:
        return sum(home.sold for home in self.homes)

    @property
    def revenue(self) -> Decimal:
        return _money(self._sum("revenue"))

    @property
    def occupancy(self) -> Decimal:
        return _money(Decimal(self.sold * 100) / self.nights) if self.nights else Decimal("0")

    @property
    def adr(self) -> Decimal:
        return _money(self.revenue / self.sold) if self.sold else Decimal("0.00")

    @property
    def revpar(self) -> Decimal:
        return _money(self.revenue / self.nights) if self.nights else Decimal("0.00")

    @property
    def cancellations(self) -> int:
        return sum(home.cancellations for home in self.homes)

    def channel_revenue(self) -> list[tuple[str, Decimal]]:
        totals: dict[str, Decimal] = {}
        for home in self.homes:
            for source, amount in home.by_channel.items():
                totals[source] = totals.get(source, Decimal("0")) + amount
        return [(source, _money(totals[source])) for source in self.channels]


def month_bounds(month: date) -> tuple[date, date]:
    first = month.replace(day=1)
    return first, first + timedelta(days=calendar.monthrange(first.year, first.month)[1])


def _nights_in(first: str, last: str, start: date, end: date) -> RawSQL:
    """Nights of [first, last) inside [start, end). In SQL: PostgreSQL's date - date is a
    number of days, where the ORM would make an interval of it."""
    return RawSQL(
        f"(LEAST({last}, %s::date) - GREATEST({first}, %s::date))",
        [end, start],
        output_field=IntegerField(),
    )


def month_report(*, properties: Sequence[Property], month: date) -> MonthReport:
    """The month's figures for each home of ``properties`` (three queries)."""
    start, end = month_bounds(month)
    days = (end - start).days
    homes = {prop.pk: HomeMonth(property=prop, nights=days) for prop in properties}
    ids = list(homes)
    overlapping = Booking.objects.filter(
        property_id__in=ids, check_in__lt=end, check_out__gt=start
    ).annotate(in_month=_nights_in("check_in", "check_out", start, end))
    # The stay's accommodation shared out per night, for the nights in the month.
    share = RawSQL(
        "(accommodation_amount * (LEAST(check_out, %s::date) - GREATEST(check_in, %s::date))"
        " / (check_out - check_in))",
        [end, start],
        output_field=DecimalField(max_digits=14, decimal_places=6),
    )
    for row in (
        overlapping.filter(status__in=SOLD)
        .values("property_id", "source")
        .annotate(sold_nights=Sum("in_month"), revenue=Sum(share))
    ):
        home = homes[row["property_id"]]
        home.sold += row["sold_nights"]
        amount = _money(row["revenue"] or Decimal("0"))
        home.revenue += amount
        home.by_channel[row["source"]] = home.by_channel.get(row["source"], Decimal("0")) + amount

    for cancelled in (
        overlapping.filter(status=BookingStatus.CANCELLED, check_in__gte=start)
        .values("property_id")
        .annotate(count=Count("pk"), fees=Sum("cancellation_fee"))
    ):
        home = homes[cancelled["property_id"]]
        home.cancellations = cancelled["count"]
        home.cancellation_fees = cancelled["fees"] or Decimal("0.00")

    for blocked in (
        Block.objects.filter(property_id__in=ids, is_active=True, start__lt=end, end__gt=start)
        .annotate(in_month=_nights_in('"start"', '"end"', start, end))
        .values("property_id")
        .annotate(blocked_nights=Sum("in_month"))
    ):
        homes[blocked["property_id"]].blocked = blocked["blocked_nights"]

    used = {source for home in homes.values() for source in home.by_channel}
    channels = [source for source in BookingSource.values if source in used]
    return MonthReport(month=start, homes=list(homes.values()), channels=channels)


def months_trend(
    *, properties: Sequence[Property], last: date, count: int = 12
) -> list[MonthReport]:
    """The ``count`` months up to ``last``, oldest first (one report each: a fixed number)."""
    months = []
    first = last.replace(day=1)
    for _ in range(count):
        months.append(first)
        first = (first - timedelta(days=1)).replace(day=1)
    return [month_report(properties=properties, month=month) for month in reversed(months)]


@dataclass(frozen=True)
class OwnerStatement:
    """What a home earned its owner in a month, from the ledger (entries dated that month)."""

    property: Property
    month: date
    accommodation: Decimal
    cancellation_fees: Decimal
    cleaning_fees: Decimal  # collected from guests, for the cleaning
    taxes: Decimal  # collected from guests, remitted
    received: Decimal  # money received from guests
    refunded: Decimal
    stays: Sequence[Booking]  # stays starting in the month

    @builtins.property
    def gross(self) -> Decimal:
        return self.accommodation + self.cancellation_fees

    @builtins.property
    def management_fee(self) -> Decimal:
        return _money(self.gross * self.property.management_fee_percent / 100)

    @builtins.property
    def net(self) -> Decimal:
        return self.gross - self.management_fee


def owner_statement(*, property: Property, month: date) -> OwnerStatement:
    """Two queries: the month's ledger totals by kind, and the stays starting in it."""
    start, end = month_bounds(month)
    totals = dict(
        LedgerEntry.objects.filter(property=property, entry_date__gte=start, entry_date__lt=end)
        .values("kind")
        .annotate(total=Sum("amount"))
        .values_list("kind", "total")
    )

    def total(kind: str) -> Decimal:
        return totals.get(kind) or Decimal("0.00")

    stays = list(
        Booking.objects.filter(property=property, check_in__gte=start, check_in__lt=end)
        .exclude(status=BookingStatus.REQUESTED)
        .select_related("guest")
        .order_by("check_in")
    )
    return OwnerStatement(
        property=property,
        month=start,
        accommodation=total(LedgerKind.ACCOMMODATION),
        cancellation_fees=total(LedgerKind.CANCELLATION_FEE),
        cleaning_fees=total(LedgerKind.CLEANING),
        taxes=total(LedgerKind.TAX),
        received=-total(LedgerKind.PAYMENT),
        refunded=total(LedgerKind.REFUND),
        stays=stays,
    )
