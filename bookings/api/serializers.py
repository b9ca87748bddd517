"""Input serializers validate shape; output serializers render. Views call services."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from bookings.models import Booking, GuestMessage
from bookings.pricing import Quote
from bookings.services.guest_access import MAX_MESSAGE_LENGTH
from pms.models import Guest, Property

MAX_RANGE_DAYS = 366
MAX_GUESTS = 50  # below the PositiveSmallIntegerField columns' 32767


class PropertyPublicSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    timezone = serializers.CharField(read_only=True)
    cancellation_policy = serializers.CharField(source="get_cancellation_policy_display")

    class Meta:
        model = Property
        fields = [
            "id",
            "name",
            "timezone",
            "check_in_time",
            "check_out_time",
            "max_guests",
            "nightly_rate",
            "cleaning_fee",
            "tax_rate",
            "currency",
            "cancellation_policy",
            "booking_mode",  # "request": a booking is a request the host accepts or declines
        ]


class DateRangeQuerySerializer(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField()

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if data["end"] <= data["start"]:
            raise serializers.ValidationError({"end": "Must be after start."})
        if (data["end"] - data["start"]).days > MAX_RANGE_DAYS:
            raise serializers.ValidationError({"end": f"At most {MAX_RANGE_DAYS} days at once."})
        return data


class AvailabilityDaySerializer(serializers.Serializer):
    date = serializers.DateField()
    available = serializers.BooleanField()


class AvailabilitySerializer(serializers.Serializer):
    property = serializers.UUIDField()
    start = serializers.DateField()
    end = serializers.DateField()
    days = AvailabilityDaySerializer(many=True)


class QuoteQuerySerializer(serializers.Serializer):
    check_in = serializers.DateField()
    check_out = serializers.DateField()
    guests = serializers.IntegerField(min_value=1, max_value=MAX_GUESTS, default=1)

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if data["check_out"] <= data["check_in"]:
            raise serializers.ValidationError({"check_out": "Must be after check-in."})
        if (data["check_out"] - data["check_in"]).days > MAX_RANGE_DAYS:
            raise serializers.ValidationError({"check_out": f"At most {MAX_RANGE_DAYS} nights."})
        return data


class NightSerializer(serializers.Serializer):
    date = serializers.DateField()
    rate = serializers.DecimalField(max_digits=10, decimal_places=2)


class QuoteLineSerializer(serializers.Serializer):
    code = serializers.CharField(
        help_text="nights, weekend_nights, override_nights, extra_guests, weekly_discount, "
        "monthly_discount, cleaning or tax."
    )
    # A field named like Field.label: the serializer's metaclass takes it off the class.
    label = serializers.CharField(help_text='e.g. "3 nights \u00d7 120.00 (High season)".')  # type: ignore[assignment]
    name = serializers.CharField(
        help_text="The season, special rate or tax the line is named after, as the host "
        "typed it (empty when none): for a page that builds its own label in another language."
    )
    quantity = serializers.IntegerField()
    unit_amount = serializers.DecimalField(max_digits=12, decimal_places=2)
    amount = serializers.DecimalField(
        max_digits=12, decimal_places=2, help_text="Negative for a discount."
    )


class QuoteSerializer(serializers.Serializer):
    check_in = serializers.DateField()
    check_out = serializers.DateField()
    nights = serializers.IntegerField()
    guests = serializers.IntegerField()
    nightly = NightSerializer(many=True)
    lines = QuoteLineSerializer(
        many=True, help_text="What the total is made of: the total is their amounts' sum."
    )
    accommodation = serializers.DecimalField(max_digits=12, decimal_places=2)
    cleaning_fee = serializers.DecimalField(max_digits=12, decimal_places=2)
    taxes = serializers.DecimalField(max_digits=12, decimal_places=2)
    total = serializers.DecimalField(max_digits=12, decimal_places=2)
    currency = serializers.CharField()
    available = serializers.BooleanField()


class PropertySearchQuerySerializer(serializers.Serializer):
    check_in = serializers.DateField(required=False, help_text="With check_out, or neither.")
    check_out = serializers.DateField(required=False, help_text="With check_in, or neither.")
    guests = serializers.IntegerField(min_value=1, max_value=MAX_GUESTS, default=1)

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        dates = data.get("check_in"), data.get("check_out")
        if all(dates) and (data["check_out"] - data["check_in"]).days > MAX_RANGE_DAYS:
            raise serializers.ValidationError({"check_out": f"At most {MAX_RANGE_DAYS} nights."})
        return data


def quote_representation(quote: Quote, *, available: bool) -> dict[str, Any]:
    """What ``QuoteSerializer`` renders for ``quote``, built directly.

    A search page renders up to 100 quotes of ~40 fields each; DRF's per-field
    machinery took half of the search's time (bench/search.py). The schema keeps
    declaring QuoteSerializer, and a test holds the two outputs equal.
    """
    return {
        "check_in": quote.check_in.isoformat(),
        "check_out": quote.check_out.isoformat(),
        "nights": quote.nights,
        "guests": quote.guests,
        "nightly": [{"date": night.isoformat(), "rate": f"{r:.2f}"} for night, r in quote.nightly],
        "lines": quote.lines_json(),
        "accommodation": f"{quote.accommodation:.2f}",
        "cleaning_fee": f"{quote.cleaning_fee:.2f}",
        "taxes": f"{quote.taxes:.2f}",
        "total": f"{quote.total:.2f}",
        "currency": quote.currency,
        "available": available,
    }


def property_search_representation(prop: Property) -> dict[str, Any]:
    """What ``PropertySearchResultSerializer`` renders for ``prop``, built directly (as
    ``quote_representation``, and for the same reason; a test holds them equal)."""
    return {
        "id": str(prop.public_id),
        "name": prop.name,
        "timezone": str(prop.timezone),
        "check_in_time": prop.check_in_time.isoformat(),
        "check_out_time": prop.check_out_time.isoformat(),
        "max_guests": prop.max_guests,
        "nightly_rate": f"{prop.nightly_rate:.2f}",
        "cleaning_fee": f"{prop.cleaning_fee:.2f}",
        "tax_rate": f"{prop.tax_rate:.2f}",
        "currency": prop.currency,
        "cancellation_policy": prop.get_cancellation_policy_display(),
        "booking_mode": prop.booking_mode,
        "quote": getattr(prop, "search_quote", None),
    }


class PropertySearchResultSerializer(PropertyPublicSerializer):
    quote = serializers.SerializerMethodField(
        help_text="The stay's price, when the search has dates; null without them."
    )

    class Meta(PropertyPublicSerializer.Meta):
        fields = [*PropertyPublicSerializer.Meta.fields, "quote"]

    @extend_schema_field(QuoteSerializer(allow_null=True))
    def get_quote(self, prop: Property) -> dict[str, Any] | None:
        # Set by the search view: quote_representation of the property's quote, or None.
        quote: dict[str, Any] | None = getattr(prop, "search_quote", None)
        return quote


def _limit(model: Any, field: str) -> int:
    """A column's max_length, so the API refuses (400) what the database cannot store (500)."""
    length = model._meta.get_field(field).max_length
    assert isinstance(length, int)
    return length


class GuestInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=_limit(Guest, "name"))
    email = serializers.EmailField(max_length=_limit(Guest, "email"))
    phone = serializers.CharField(
        max_length=_limit(Guest, "phone"), required=False, allow_blank=True, default=""
    )


class BookingCreateSerializer(serializers.Serializer):
    property = serializers.UUIDField(help_text="The property's id from the properties endpoint.")
    check_in = serializers.DateField()
    check_out = serializers.DateField()
    guests = serializers.IntegerField(min_value=1, max_value=MAX_GUESTS)
    guest = GuestInputSerializer()

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        # Date order is a booking rule (code "invalid_dates"), checked by the service.
        if (data["check_out"] - data["check_in"]).days > MAX_RANGE_DAYS:
            raise serializers.ValidationError({"check_out": f"At most {MAX_RANGE_DAYS} nights."})
        return data


class BookingSerializer(serializers.ModelSerializer):
    property = serializers.UUIDField(source="property.public_id", read_only=True)
    property_name = serializers.CharField(source="property.name", read_only=True)
    guests = serializers.IntegerField(source="guests_count", read_only=True)
    guest_name = serializers.CharField(source="guest.name", read_only=True)
    nights = serializers.IntegerField(read_only=True)
    price_lines = QuoteLineSerializer(
        many=True, read_only=True, help_text="The price's lines when the stay was priced."
    )

    class Meta:
        model = Booking
        fields = [
            "reference",
            "status",
            "property",
            "property_name",
            "check_in",
            "check_out",
            "nights",
            "guests",
            "guest_name",
            "accommodation_amount",
            "cleaning_amount",
            "tax_amount",
            "total",
            "currency",
            "cancellation_fee",
            "price_lines",
            "created_at",
        ]


class BookingCreatedSerializer(BookingSerializer):
    token = serializers.SerializerMethodField(
        help_text="Secret booking token: send it as 'Authorization: Bearer <token>'. Shown once."
    )
    link = serializers.SerializerMethodField(help_text="The guest's private link to the booking.")

    class Meta(BookingSerializer.Meta):
        fields = [*BookingSerializer.Meta.fields, "token", "link"]

    def get_token(self, booking: Booking) -> str:
        return str(self.context["token"])

    def get_link(self, booking: Booking) -> str:
        return f"{settings.GUEST_LINK_BASE_URL}{booking.reference}/?token={self.context['token']}"


class MessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = GuestMessage
        fields = ["id", "sender", "body", "created_at"]
        read_only_fields = ["id", "sender", "created_at"]


class MessageCreateSerializer(serializers.Serializer):
    body = serializers.CharField(max_length=MAX_MESSAGE_LENGTH, trim_whitespace=True)


def _money() -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=12, decimal_places=2)


class CancellationPreviewSerializer(serializers.Serializer):
    policy = serializers.CharField()
    days_before = serializers.IntegerField()
    refund_percent = serializers.IntegerField()
    fee = _money()
    paid = _money()
    refund = _money()
    still_owed = _money()
    currency = serializers.CharField()


class StayChangeSerializer(QuoteQuerySerializer):
    expected_total = serializers.DecimalField(
        max_digits=12,
        decimal_places=2,
        required=False,
        help_text="The total the guest was shown (from the preview). When given and the "
        "price has changed since, nothing changes and the answer is 409 price_changed.",
    )


class ChangePreviewSerializer(serializers.Serializer):
    check_in = serializers.DateField()
    check_out = serializers.DateField()
    nights = serializers.IntegerField()
    guests = serializers.IntegerField(source="guests_count")
    lines = QuoteLineSerializer(many=True, help_text="The new price, line by line.")
    accommodation = _money()
    cleaning_fee = _money()
    taxes = _money()
    retained = serializers.DecimalField(
        max_digits=12,
        decimal_places=2,
        help_text="Kept under the cancellation policy for what the guest's changes gave up "
        "(this change's and earlier ones'); part of accommodation and total.",
    )
    total = _money()
    previous_total = _money()
    difference = _money()
    paid = _money()
    to_pay = _money()
    to_refund = _money()
    currency = serializers.CharField()
