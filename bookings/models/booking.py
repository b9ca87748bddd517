from __future__ import annotations

import builtins
from collections.abc import Collection
from decimal import Decimal

from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import DateRangeField, RangeOperators
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Func, Q

from bookings.choices import OCCUPYING_STATUSES, BookingSource, BookingStatus
from pms.models import Guest, Property, currency_code
from tenants.models import TenantOwned


class DateRange(Func):
    """``daterange(start, end, '[)')``: the check-out day is exclusive, free for the next guest."""

    function = "daterange"
    output_field = DateRangeField()


class Booking(TenantOwned):
    property = models.ForeignKey(Property, on_delete=models.PROTECT, related_name="bookings")
    guest = models.ForeignKey(Guest, on_delete=models.PROTECT, related_name="bookings")
    reference = models.CharField(max_length=12, unique=True, editable=False)
    check_in = models.DateField()
    check_out = models.DateField()
    status = models.CharField(
        max_length=20, choices=BookingStatus.choices, default=BookingStatus.CONFIRMED
    )
    guests_count = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1)])
    accommodation_amount = models.DecimalField(
        max_digits=12, decimal_places=2, default=Decimal("0")
    )
    cleaning_amount = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0"))
    tax_amount = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0"))
    total = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0"))
    currency = models.CharField(max_length=3, default="EUR", validators=[currency_code])
    source = models.CharField(
        max_length=20, choices=BookingSource.choices, default=BookingSource.DIRECT
    )
    external_reference = models.CharField(max_length=100, blank=True)
    cancellation_reason = models.TextField(blank=True)
    # What the guest still owes of the total under the policy, fixed by booking_cancel (and
    # carried in the booking.cancelled event); null while the booking is not cancelled.
    cancellation_fee = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True, editable=False
    )
    # Kept of the price under the cancellation policy when the guest made the stay cheaper
    # (fewer nights, fewer guests): part of ``accommodation_amount`` and ``total``, and of
    # the fee should the booking be cancelled later (bookings.services.lifecycle).
    retained_amount = models.DecimalField(
        max_digits=12, decimal_places=2, default=Decimal("0"), editable=False
    )
    # The quote's lines when the stay was priced (bookings.pricing.Quote.lines_json):
    # [{"code", "label", "quantity", "unit_amount", "amount"}], amounts as strings.
    price_lines = models.JSONField(default=list, blank=True, editable=False)
    # When the guest's oldest unanswered message arrived; cleared by the host's reply
    # (bookings.services.guest_access.guest_message_post keeps it). Stored, so the
    # dashboard and the "awaiting a reply" filter need not scan every thread.
    awaiting_reply_since = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-check_in"]
        indexes = [
            models.Index(fields=["tenant", "status", "check_in"]),
            models.Index(fields=["property", "check_in"]),
            # The request-expiry sweep: requests to book, oldest first (a small index).
            models.Index(
                fields=["created_at"],
                condition=Q(status=BookingStatus.REQUESTED),
                name="booking_requests_by_age",
            ),
            # Threads waiting for the host, oldest first (the dashboard's panel).
            models.Index(
                fields=["tenant", "awaiting_reply_since"],
                condition=Q(awaiting_reply_since__isnull=False),
                name="booking_awaiting_reply",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(check_out__gt=models.F("check_in")),
                name="booking_checkout_after_checkin",
                violation_error_message="Check-out must be after check-in.",
            ),
            ExclusionConstraint(
                name="booking_no_double_booking",
                expressions=[
                    ("property", RangeOperators.EQUAL),
                    (
                        DateRange("check_in", "check_out", models.Value("[)")),
                        RangeOperators.OVERLAPS,
                    ),
                ],
                condition=Q(status__in=OCCUPYING_STATUSES),
                violation_error_code="unavailable",
                violation_error_message="These dates overlap another booking of this property.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reference} {self.property} {self.check_in}..{self.check_out}"

    def validate_constraints(self, exclude: Collection[str] | None = None) -> None:
        # The no-double-booking condition reads ``status``, which admin forms
        # never edit (it changes through lifecycle services). The instance
        # always has one, so validate with it rather than skip the constraint.
        super().validate_constraints(exclude=(set(exclude) - {"status"}) if exclude else exclude)

    @builtins.property
    def nights(self) -> int:
        return (self.check_out - self.check_in).days


class RateOverride(TenantOwned):
    """A nightly rate for one date of one property (season, event, last-minute deal)."""

    property = models.ForeignKey(Property, on_delete=models.CASCADE, related_name="rate_overrides")
    date = models.DateField()
    nightly_rate = models.DecimalField(
        max_digits=10, decimal_places=2, validators=[MinValueValidator(Decimal("0"))]
    )
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["date"]
        constraints = [
            models.UniqueConstraint(fields=["property", "date"], name="rate_override_unique_date")
        ]

    def __str__(self) -> str:
        return f"{self.property} {self.date}: {self.nightly_rate}"
