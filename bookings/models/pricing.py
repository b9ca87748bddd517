"""The pricing rules a manager edits beside the property: seasons and taxes.

The property itself carries the flat rules (nightly and weekend rate, extra-guest
fee, weekly and monthly discounts, cleaning fee, its one percentage ``tax_rate``);
per-date ``RateOverride`` rows win over everything. ``bookings.pricing`` applies them.
"""

from __future__ import annotations

from decimal import Decimal

from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import RangeOperators
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from bookings.choices import TaxKind
from bookings.models.booking import DateRange
from pms.models import MAX_NIGHTS_LIMIT, Property
from tenants.models import TenantOwned

_rate_validators = [MinValueValidator(Decimal("0"))]
_nights_validators = [MinValueValidator(1), MaxValueValidator(MAX_NIGHTS_LIMIT)]


class Season(TenantOwned):
    """A date span of one property with its own rates and stay rules.

    ``start`` is the first night of the season and ``end`` the first night *after*
    it (exclusive, like a check-out day and like blocks): a season from 1 July to
    1 September prices the nights of July and August. Seasons of one property never
    overlap (an exclusion constraint), so each night has at most one season.
    """

    property = models.ForeignKey(Property, on_delete=models.CASCADE, related_name="seasons")
    name = models.CharField(max_length=100)
    start = models.DateField(help_text="First night of the season.")
    end = models.DateField(
        help_text="First night after the season (exclusive, like a check-out day)."
    )
    nightly_rate = models.DecimalField(max_digits=10, decimal_places=2, validators=_rate_validators)
    weekend_rate = models.DecimalField(
        max_digits=10,
        decimal_places=2,
        null=True,
        blank=True,
        validators=_rate_validators,
        help_text="Friday and Saturday nights. Empty: the season's nightly rate.",
    )
    min_nights = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=_nights_validators,
        help_text="For stays whose check-in night is in the season. Empty: the property's.",
    )
    max_nights = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=_nights_validators,
        help_text="For stays whose check-in night is in the season. Empty: the property's.",
    )

    class Meta:
        ordering = ["start"]
        constraints = [
            models.CheckConstraint(
                condition=Q(end__gt=models.F("start")),
                name="season_end_after_start",
                violation_error_message="The season must end after it starts.",
            ),
            ExclusionConstraint(
                name="season_no_overlap",
                expressions=[
                    ("property", RangeOperators.EQUAL),
                    (DateRange("start", "end", models.Value("[)")), RangeOperators.OVERLAPS),
                ],
                violation_error_code="season_overlap",
                violation_error_message="This season overlaps another season of this property.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.start}..{self.end})"

    def clean(self) -> None:
        super().clean()
        if self.min_nights and self.max_nights and self.min_nights > self.max_nights:
            raise ValidationError({"max_nights": "Must be at least the minimum nights."})


class PropertyTax(TenantOwned):
    """One tax of a property's stays, a line of every quote.

    ``percent``: ``rate`` percent of accommodation (after discounts) plus cleaning;
    ``per_night``: ``rate`` per night; ``per_guest_night``: ``rate`` per guest per
    night (a city tax). The property's own ``tax_rate`` stays a percentage tax on
    the same base, applied first.
    """

    property = models.ForeignKey(Property, on_delete=models.CASCADE, related_name="taxes")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=TaxKind.choices, default=TaxKind.PERCENT)
    rate = models.DecimalField(
        max_digits=10,
        decimal_places=2,
        validators=_rate_validators,
        help_text="A percentage (10.00 is 10 %) or an amount in the property's currency.",
    )

    class Meta:
        ordering = ["pk"]
        verbose_name_plural = "property taxes"

    def __str__(self) -> str:
        return self.name
