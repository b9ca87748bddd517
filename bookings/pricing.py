"""Quotes: what a stay costs, line by line, and the stay-length rules of seasons.

One calculation, ``price_stay``, a pure function of a property's rules (``PricingRules``)
and a stay. ``quote_stay`` loads one property's rules (one query); ``quote_many`` loads a set of
properties' rules in one query whatever their number (the search).

The rules, night by night (a night is the date the guest sleeps there):
1. a per-date ``RateOverride`` wins over everything;
2. else the night's ``Season``: its weekend rate on Friday and Saturday nights if it
   has one, else its nightly rate (a season without a weekend rate ignores the
   property's weekend rate: the season's price holds every night);
3. else the property's weekend rate on Friday and Saturday nights, if set;
4. else the property's nightly rate.
Then: extra guests (``extra_guest_fee`` per guest above ``base_occupancy`` per
night); the discount, ``monthly_discount_percent`` from 28 nights, else
``weekly_discount_percent`` from 7 (never both), of the nights plus extra guests;
cleaning; the taxes, the property's ``tax_rate`` first then each ``PropertyTax``.
A percentage tax is of accommodation (after the discount) plus cleaning.

Money: every line's amount is in cents. A percentage (discount, tax) is rounded to
the cent half up (ROUND_HALF_UP: 0.005 becomes 0.01) once per line; nothing else
needs rounding (rates and fees are cents, quantities are whole). ``total`` is the
sum of the lines' amounts, exactly, and ``accommodation + cleaning_fee + taxes``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db import connection

from bookings.choices import CANCELLATION_TIERS, TaxKind
from bookings.errors import BookingError
from bookings.models import PropertyTax, RateOverride, Season
from pms.models import Property

CENT = Decimal("0.01")
# Typography of the lines' labels: "3 nights x 120.00", "Weekly discount -10 %".
TIMES = "\N{MULTIPLICATION SIGN}"
MINUS = "\N{MINUS SIGN}"
ZERO = Decimal("0.00")
WEEKEND_NIGHTS = (4, 5)  # Friday and Saturday nights (date.weekday())
WEEKLY_NIGHTS = 7
MONTHLY_NIGHTS = 28

# Line codes: stable, for clients and for the ledger's split (accommodation, cleaning, tax).
ACCOMMODATION_CODES = frozenset({"nights", "weekend_nights", "override_nights", "extra_guests"})
DISCOUNT_CODES = frozenset({"weekly_discount", "monthly_discount"})
CLEANING_CODE = "cleaning"
TAX_CODE = "tax"


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, ROUND_HALF_UP)


def _percent_of(base: Decimal, percent: Decimal) -> Decimal:
    return _cents(base * percent / 100)


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _percent_label(percent: Decimal) -> str:
    return f"{percent.normalize():f} %"


@dataclass(frozen=True)
class QuoteLine:
    code: str  # nights, weekend_nights, override_nights, extra_guests, *_discount, cleaning, tax
    label: str  # e.g. "3 nights \N{MULTIPLICATION SIGN} 120.00 (High season)"
    quantity: int
    unit_amount: Decimal
    amount: Decimal
    # What the line is named after, as the manager typed it: a season, an override's
    # note, a tax ("" when none). A translated page builds its own label from code,
    # quantity, unit amount and this.
    name: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "label": self.label,
            "name": self.name,
            "quantity": self.quantity,
            "unit_amount": _money(self.unit_amount),
            "amount": _money(self.amount),
        }


@dataclass(frozen=True)
class Quote:
    check_in: date
    check_out: date
    nightly: tuple[tuple[date, Decimal], ...]
    accommodation: Decimal  # nights + extra guests - discount
    cleaning_fee: Decimal
    taxes: Decimal  # the sum of the tax lines
    total: Decimal  # the sum of all lines
    currency: str
    guests: int = 1
    lines: tuple[QuoteLine, ...] = ()

    @property
    def nights(self) -> int:
        return len(self.nightly)

    def lines_json(self) -> list[dict[str, Any]]:
        return [line.as_json() for line in self.lines]


@dataclass(frozen=True)
class SeasonRule:
    """A season as the calculation reads it (from a ``Season`` row)."""

    name: str
    start: date  # first night
    end: date  # first night after (exclusive)
    nightly_rate: Decimal
    weekend_rate: Decimal | None = None
    min_nights: int | None = None
    max_nights: int | None = None


@dataclass(frozen=True)
class TaxRule:
    """A tax as the calculation reads it (from a ``PropertyTax`` row)."""

    name: str
    kind: str  # TaxKind
    rate: Decimal


@dataclass(frozen=True)
class OverrideRule:
    """One date's rate (from a ``RateOverride`` row)."""

    nightly_rate: Decimal
    note: str = ""


@dataclass(frozen=True)
class PricingRules:
    """What prices one property's stays: the property and its rows, loaded once."""

    property: Property
    overrides: dict[date, OverrideRule] = field(default_factory=dict)
    seasons: Sequence[SeasonRule] = ()  # by start; they never overlap
    taxes: Sequence[TaxRule] = ()  # in the order they were added

    def season_of(self, night: date) -> SeasonRule | None:
        return next((s for s in self.seasons if s.start <= night < s.end), None)


# --- Stay-length rules ---------------------------------------------------------------


def nights_allowed(*, property: Property, season: SeasonRule | None) -> tuple[int, int]:
    """(min, max) nights of a stay whose check-in night is in ``season`` (or none).

    A season's minimum or maximum, when set, replaces the property's.
    """
    minimum = season.min_nights if season and season.min_nights else property.min_nights
    maximum = season.max_nights if season and season.max_nights else property.max_nights
    return minimum, maximum


def check_stay_length(*, property: Property, season: SeasonRule | None, nights: int) -> None:
    """Refuse a stay shorter or longer than allowed: codes too_few_nights, too_many_nights."""
    minimum, maximum = nights_allowed(property=property, season=season)
    where = f"{property.name} in {season.name}" if season else property.name
    if nights < minimum:
        raise BookingError(
            "too_few_nights",
            f"{where} takes stays of at least {minimum} nights.",
            field="check_out",
        )
    if nights > maximum:
        raise BookingError(
            "too_many_nights",
            f"{where} takes stays of at most {maximum} nights.",
            field="check_out",
        )


def season_of_night(*, property: Property, night: date) -> SeasonRule | None:
    """The property's season that ``night`` is in (one query)."""
    row = (
        Season.objects.filter(property=property, start__lte=night, end__gt=night)
        .values_list(*_SEASON_COLUMNS)
        .first()
    )
    return SeasonRule(*row) if row else None


# --- Loading the rules -----------------------------------------------------------------


_SEASON_COLUMNS = (
    "name",
    "start",
    "end",
    "nightly_rate",
    "weekend_rate",
    "min_nights",
    "max_nights",
)


# One statement for the three kinds of rows. The ORM spent ~0.8 ms compiling each of
# three small queries (a SELECT round trip here is ~0.2 ms): most of a search page's
# time. Columns: kind, property, date or start, end, note or name, rate, weekend rate,
# min nights, max nights, tax kind. Seasons come by start, taxes as added.
_RULES_SQL = """
SELECT 'override', property_id, date, NULL::date, note, nightly_rate, NULL::numeric,
       NULL::integer, NULL::integer, '', id
  FROM {override} WHERE property_id = ANY(%(ids)s) AND date >= %(check_in)s
   AND date < %(check_out)s
UNION ALL
SELECT 'season', property_id, start, "end", name, nightly_rate, weekend_rate,
       min_nights, max_nights, '', id
  FROM {season} WHERE property_id = ANY(%(ids)s) AND start < %(check_out)s
   AND "end" > %(check_in)s
UNION ALL
SELECT 'tax', property_id, NULL, NULL, name, rate, NULL, NULL, NULL, kind, id
  FROM {tax} WHERE property_id = ANY(%(ids)s)
ORDER BY 3, 11
"""


def pricing_rules_many(
    properties: Iterable[Property], *, check_in: date, check_out: date
) -> dict[int, PricingRules]:
    """Each property's rules for [check_in, check_out): one query, any number of them.

    The overrides of the stay's nights, the seasons that touch it and the taxes.
    """
    by_id = {prop.pk: prop for prop in properties}
    overrides: defaultdict[int, dict[date, OverrideRule]] = defaultdict(dict)
    seasons: defaultdict[int, list[SeasonRule]] = defaultdict(list)
    taxes: defaultdict[int, list[TaxRule]] = defaultdict(list)
    if by_id:
        sql = _RULES_SQL.format(
            override=RateOverride._meta.db_table,
            season=Season._meta.db_table,
            tax=PropertyTax._meta.db_table,
        )
        params: dict[str, Any] = {
            "ids": list(by_id),
            "check_in": check_in,
            "check_out": check_out,
        }
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        for rule, pk, day_from, day_to, text, amount, weekend, low, high, kind, _ in rows:
            if rule == "override":
                overrides[pk][day_from] = OverrideRule(amount, text)
            elif rule == "season":
                seasons[pk].append(SeasonRule(text, day_from, day_to, amount, weekend, low, high))
            else:
                taxes[pk].append(TaxRule(text, kind, amount))
    return {
        pk: PricingRules(
            property=prop, overrides=overrides[pk], seasons=seasons[pk], taxes=taxes[pk]
        )
        for pk, prop in by_id.items()
    }


def quote_stay(*, property: Property, check_in: date, check_out: date, guests: int = 1) -> Quote:
    """Price a stay of one property (one query, whatever the length of the stay)."""
    rules = pricing_rules_many([property], check_in=check_in, check_out=check_out)[property.pk]
    return price_stay(rules, check_in=check_in, check_out=check_out, guests=guests)


def quote_many(
    properties: Iterable[Property], *, check_in: date, check_out: date, guests: int = 1
) -> dict[int, Quote]:
    """The same stay priced for each property, by id: one query in all."""
    rules = pricing_rules_many(properties, check_in=check_in, check_out=check_out)
    return {
        pk: price_stay(rule, check_in=check_in, check_out=check_out, guests=guests)
        for pk, rule in rules.items()
    }


# --- The calculation -----------------------------------------------------------------


def _night_rate(rules: PricingRules, night: date) -> tuple[str, str, Decimal]:
    """(line code, source label, rate) of one night."""
    prop = rules.property
    weekend = night.weekday() in WEEKEND_NIGHTS
    override = rules.overrides.get(night)
    if override is not None:
        return "override_nights", override.note or "special rate", override.nightly_rate
    season = rules.season_of(night)
    if season is not None:
        if weekend and season.weekend_rate is not None:
            return "weekend_nights", season.name, season.weekend_rate
        return "nights", season.name, season.nightly_rate
    if weekend and prop.weekend_rate is not None:
        return "weekend_nights", "", prop.weekend_rate
    return "nights", "", prop.nightly_rate


def _night_lines(priced: Sequence[tuple[str, str, Decimal]]) -> list[QuoteLine]:
    """One line per (kind, source, rate), in order of first appearance."""
    groups: dict[tuple[str, str, Decimal], int] = {}
    for key in priced:
        groups[key] = groups.get(key, 0) + 1
    lines = []
    for (code, source, rate), count in groups.items():
        rate = _cents(rate)
        noun = "weekend night" if code == "weekend_nights" else "night"
        label = f"{_count(count, noun)} {TIMES} {_money(rate)}"
        if source:
            label += f" ({source})"
        lines.append(QuoteLine(code, label, count, rate, rate * count, source))
    return lines


def _tax_lines(rules: PricingRules, *, base: Decimal, nights: int, guests: int) -> list[QuoteLine]:
    prop = rules.property
    lines = []
    if prop.tax_rate:
        amount = _percent_of(base, prop.tax_rate)
        lines.append(QuoteLine(TAX_CODE, f"Tax {_percent_label(prop.tax_rate)}", 1, amount, amount))
    for tax in rules.taxes:
        if tax.kind == TaxKind.PERCENT:
            amount = _percent_of(base, tax.rate)
            label = f"{tax.name} {_percent_label(tax.rate)}"
            lines.append(QuoteLine(TAX_CODE, label, 1, amount, amount, tax.name))
            continue
        rate = _cents(tax.rate)
        if tax.kind == TaxKind.PER_NIGHT:
            label = f"{tax.name}: {_count(nights, 'night')} {TIMES} {_money(rate)}"
            lines.append(QuoteLine(TAX_CODE, label, nights, rate, rate * nights, tax.name))
        else:
            count = nights * guests
            label = (
                f"{tax.name}: {_count(guests, 'guest')} {TIMES} {_count(nights, 'night')}"
                f" {TIMES} {_money(rate)}"
            )
            lines.append(QuoteLine(TAX_CODE, label, count, rate, rate * count, tax.name))
    return lines


def price_stay(rules: PricingRules, *, check_in: date, check_out: date, guests: int = 1) -> Quote:
    """The quote of a stay under ``rules``: no queries."""
    prop = rules.property
    nights = max((check_out - check_in).days, 0)
    dates = [check_in + timedelta(days=offset) for offset in range(nights)]
    priced = [_night_rate(rules, night) for night in dates]
    lines = _night_lines(priced)

    extra = max(guests - prop.base_occupancy, 0)
    if extra and prop.extra_guest_fee and nights:
        fee = _cents(prop.extra_guest_fee)
        label = f"Extra guests: {extra} {TIMES} {_count(nights, 'night')} {TIMES} {_money(fee)}"
        lines.append(QuoteLine("extra_guests", label, extra * nights, fee, fee * extra * nights))

    before_discount = sum((line.amount for line in lines), ZERO)
    if nights >= MONTHLY_NIGHTS and prop.monthly_discount_percent:
        code, name, percent = "monthly_discount", "Monthly", prop.monthly_discount_percent
    elif nights >= WEEKLY_NIGHTS and prop.weekly_discount_percent:
        code, name, percent = "weekly_discount", "Weekly", prop.weekly_discount_percent
    else:
        code, name, percent = "", "", ZERO
    if percent:
        amount = -_percent_of(before_discount, percent)
        label = f"{name} discount {MINUS}{_percent_label(percent)}"
        lines.append(QuoteLine(code, label, 1, amount, amount))
    accommodation = sum((line.amount for line in lines), ZERO)

    cleaning = _cents(prop.cleaning_fee)
    if cleaning:
        lines.append(QuoteLine(CLEANING_CODE, "Cleaning", 1, cleaning, cleaning))

    tax_lines = _tax_lines(rules, base=accommodation + cleaning, nights=nights, guests=guests)
    lines += tax_lines
    taxes = sum((line.amount for line in tax_lines), ZERO)
    return Quote(
        check_in=check_in,
        check_out=check_out,
        nightly=tuple(zip(dates, (_cents(rate) for _, _, rate in priced), strict=True)),
        accommodation=accommodation,
        cleaning_fee=cleaning,
        taxes=taxes,
        total=sum((line.amount for line in lines), ZERO),
        currency=prop.currency,
        guests=guests,
        lines=tuple(lines),
    )


RETAINED_CODE = "retained"


def retained_line_json(retained: Decimal) -> dict[str, Any]:
    """The price line of what the policy kept when the guest made the stay cheaper."""
    amount = _money(retained)
    return {
        "code": RETAINED_CODE,
        "label": "Kept under the cancellation policy for the nights given up",
        "name": "",
        "quantity": 1,
        "unit_amount": amount,
        "amount": amount,
    }


def lines_with_retained(quote: Quote, retained: Decimal) -> list[dict[str, Any]]:
    """A stay's stored lines: the quote's, then what earlier reductions kept (if anything)."""
    lines = quote.lines_json()
    return [*lines, retained_line_json(retained)] if retained else lines


# --- Cancellation --------------------------------------------------------------------


@dataclass(frozen=True)
class CancellationTerms:
    policy: str
    days_before: int
    refund_percent: int
    fee: Decimal  # what the guest still owes of the total


def cancellation_terms(
    *, property: Property, check_in: date, total: Decimal, on: date
) -> CancellationTerms:
    """Apply the property's cancellation policy to a cancellation made on ``on`` (local date)."""

    days_before = (check_in - on).days
    refund_percent = 0
    for min_days, percent in CANCELLATION_TIERS[property.cancellation_policy]:
        if days_before >= min_days:
            refund_percent = percent
            break
    fee = (total * (100 - refund_percent) / 100).quantize(CENT, ROUND_HALF_UP)
    return CancellationTerms(property.cancellation_policy, days_before, refund_percent, fee)
