"""Quotes: what a stay costs, night by night."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from bookings.choices import CANCELLATION_TIERS
from bookings.models import RateOverride
from pms.models import Property

CENT = Decimal("0.01")


@dataclass(frozen=True)
class Quote:
    check_in: date
    check_out: date
    nightly: tuple[tuple[date, Decimal], ...]
    accommodation: Decimal
    cleaning_fee: Decimal
    taxes: Decimal
    total: Decimal
    currency: str

    @property
    def nights(self) -> int:
        return len(self.nightly)


def quote_stay(*, property: Property, check_in: date, check_out: date) -> Quote:
    """Price a stay: per-date overrides, else the property's rate; cleaning; taxes on both.

    One query, whatever the length of the stay.
    """
    overrides = dict(
        RateOverride.objects.filter(
            property=property, date__gte=check_in, date__lt=check_out
        ).values_list("date", "nightly_rate")
    )
    nights = (check_out - check_in).days
    nightly = tuple(
        (day, overrides.get(day, property.nightly_rate))
        for day in (check_in + timedelta(days=offset) for offset in range(max(nights, 0)))
    )
    accommodation = sum((rate for _, rate in nightly), Decimal("0")).quantize(CENT)
    cleaning = property.cleaning_fee.quantize(CENT)
    taxes = ((accommodation + cleaning) * property.tax_rate / 100).quantize(CENT, ROUND_HALF_UP)
    return Quote(
        check_in=check_in,
        check_out=check_out,
        nightly=nightly,
        accommodation=accommodation,
        cleaning_fee=cleaning,
        taxes=taxes,
        total=accommodation + cleaning + taxes,
        currency=property.currency,
    )


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
