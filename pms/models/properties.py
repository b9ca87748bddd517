"""Properties and guests: what every app's records belong to."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from timezone_field import TimeZoneField

from tenants.models import TenantOwned

# Upper bounds for the per-property stay rules: a year's stay, ten years ahead.
MAX_NIGHTS_LIMIT = 366
MAX_HORIZON_DAYS = 3660
# A request to book waits at most a month for the host's answer.
MAX_REQUEST_EXPIRY_HOURS = 720

currency_code = RegexValidator(r"^[A-Z]{3}$", "Use a three-letter ISO 4217 code, e.g. EUR.")


class CancellationPolicy(models.TextChoices):
    FLEXIBLE = "flexible", "Flexible: full refund up to 1 day before check-in"
    MODERATE = "moderate", "Moderate: full refund up to 5 days before, then 50%"
    STRICT = "strict", "Strict: full refund up to 14 days before, 50% up to 7 days, then none"


class BookingMode(models.TextChoices):
    INSTANT = "instant", "Instant: online bookings are confirmed at once"
    REQUEST = "request", "Request to book: the host accepts or declines each online booking"


class Property(TenantOwned):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=200)
    slug = models.SlugField()
    timezone = TimeZoneField(default="UTC", help_text="IANA time zone of the property.")
    address = models.TextField(blank=True)
    check_in_time = models.TimeField(default="15:00")
    check_out_time = models.TimeField(default="11:00")
    max_guests = models.PositiveSmallIntegerField(default=2, validators=[MinValueValidator(1)])
    nightly_rate = models.DecimalField(
        max_digits=10, decimal_places=2, validators=[MinValueValidator(Decimal("0"))]
    )
    # Pricing rules (bookings.pricing applies them; seasons, taxes and per-date
    # overrides are bookings' rows beside the property).
    weekend_rate = models.DecimalField(
        max_digits=10,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Friday and Saturday nights outside seasons. Empty: the nightly rate.",
    )
    base_occupancy = models.PositiveSmallIntegerField(
        default=2,
        validators=[MinValueValidator(1)],
        help_text="Guests included in the nightly rate; each guest above pays the extra-guest fee.",
    )
    extra_guest_fee = models.DecimalField(
        max_digits=10,
        decimal_places=2,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Per guest above the base occupancy, per night.",
    )
    weekly_discount_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
        help_text="Off accommodation for stays of 7 nights or more.",
    )
    monthly_discount_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
        help_text="Off accommodation for stays of 28 nights or more (instead of the weekly one).",
    )
    cleaning_fee = models.DecimalField(
        max_digits=10, decimal_places=2, default=Decimal("0"), validators=[MinValueValidator(0)]
    )
    currency = models.CharField(max_length=3, default="EUR", validators=[currency_code])
    tax_rate = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Percent of accommodation and cleaning, e.g. 10.00.",
    )
    cancellation_policy = models.CharField(
        max_length=20, choices=CancellationPolicy.choices, default=CancellationPolicy.MODERATE
    )
    is_active = models.BooleanField(default=True)
    management_fee_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
        help_text="What the manager keeps of the home's revenue (the owner statement's fee).",
    )
    check_in_instructions = models.TextField(
        blank=True,
        help_text="Door code, key box, parking, Wi-Fi: shown on the guest's booking page from "
        "CHECK_IN_INSTRUCTIONS_DAYS_BEFORE days before arrival (never earlier).",
    )
    # Stay rules, checked by the booking services (admin and API alike).
    min_nights = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(MAX_NIGHTS_LIMIT)]
    )
    max_nights = models.PositiveSmallIntegerField(
        default=MAX_NIGHTS_LIMIT,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_NIGHTS_LIMIT)],
    )
    booking_horizon_days = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_HORIZON_DAYS)],
        help_text="How many days ahead a stay may end. Empty: the installation's default "
        "(BOOKING_HORIZON_DAYS, two years).",
    )
    # How the public API books: confirmed at once, or a request the host answers
    # (the dates are held meanwhile; no payment is asked until it is accepted).
    booking_mode = models.CharField(
        max_length=10, choices=BookingMode.choices, default=BookingMode.INSTANT
    )
    booking_request_expiry_hours = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_REQUEST_EXPIRY_HOURS)],
        help_text="Request to book: hours a request waits for an answer before it is "
        "declined automatically. Empty: the installation's default "
        "(BOOKING_REQUEST_EXPIRY_HOURS, 24).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "properties"
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "slug"], name="property_unique_slug_per_tenant"
            )
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        if self.min_nights and self.max_nights and self.min_nights > self.max_nights:
            raise ValidationError({"max_nights": "Must be at least the minimum nights."})

    @property
    def horizon_days(self) -> int:
        return self.booking_horizon_days or settings.BOOKING_HORIZON_DAYS

    @property
    def takes_requests(self) -> bool:
        return self.booking_mode == BookingMode.REQUEST

    @property
    def request_expiry(self) -> timedelta:
        """How long a request to book waits for the host's answer."""
        return timedelta(
            hours=self.booking_request_expiry_hours or settings.BOOKING_REQUEST_EXPIRY_HOURS
        )


class Guest(TenantOwned):
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["tenant", "email"])]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>" if self.email else self.name


# --- The outbox ------------------------------------------------------------------
