"""Each pricing rule, one at a time: seasons, weekends, extra guests, discounts, taxes."""

# The labels carry the typographic signs a guest reads (multiplication, minus).
# ruff: noqa: RUF001

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from bookings.choices import TaxKind
from bookings.errors import BookingError
from bookings.models import PropertyTax, RateOverride, Season
from bookings.pricing import quote_stay
from bookings.services import booking_create, booking_modify
from tests.factories import PropertyFactory

pytestmark = pytest.mark.django_db


def next_monday(after: date) -> date:
    return after + timedelta(days=(7 - after.weekday()) % 7 or 7)


@pytest.fixture
def monday(future: date) -> date:
    return next_monday(future)


@pytest.fixture
def prop(alice):
    return PropertyFactory.create(
        tenant=alice.tenant, nightly_rate=Decimal("100.00"), cleaning_fee=Decimal("0")
    )


def season(prop, start, end, **kwargs):
    kwargs.setdefault("nightly_rate", Decimal("120.00"))
    kwargs.setdefault("name", "High season")
    return Season.objects.create(tenant=prop.tenant, property=prop, start=start, end=end, **kwargs)


def quote(prop, check_in, nights, guests=1):
    return quote_stay(
        property=prop, check_in=check_in, check_out=check_in + timedelta(days=nights), guests=guests
    )


def lines(q):
    return [(line.code, line.label, line.amount) for line in q.lines]


def assert_consistent(q):
    assert q.total == sum(line.amount for line in q.lines)
    assert q.total == q.accommodation + q.cleaning_fee + q.taxes


def test_the_flat_rate_is_one_line(prop, monday):
    q = quote(prop, monday, 3)
    assert lines(q) == [("nights", "3 nights × 100.00", Decimal("300.00"))]
    assert q.total == Decimal("300.00") and q.accommodation == Decimal("300.00")


def test_a_season_prices_its_nights_and_names_itself(prop, monday):
    # Season from Tuesday to Thursday (exclusive): the Tuesday and Wednesday nights.
    season(prop, monday + timedelta(days=1), monday + timedelta(days=3))
    q = quote(prop, monday, 4)
    assert lines(q) == [
        ("nights", "2 nights × 100.00", Decimal("200.00")),
        ("nights", "2 nights × 120.00 (High season)", Decimal("240.00")),
    ]
    assert [rate for _, rate in q.nightly] == [Decimal(x) for x in ("100", "120", "120", "100")]
    assert_consistent(q)


def test_the_season_end_date_is_exclusive(prop, monday):
    season(prop, monday, monday + timedelta(days=1))
    q = quote(prop, monday, 2)
    assert [rate for _, rate in q.nightly] == [Decimal("120.00"), Decimal("100.00")]


def test_friday_and_saturday_nights_take_the_weekend_rate(prop, monday):
    prop.weekend_rate = Decimal("150.00")
    prop.save()
    thursday = monday + timedelta(days=3)
    q = quote(prop, thursday, 4)  # Thursday, Friday, Saturday, Sunday nights
    assert lines(q) == [
        ("nights", "2 nights × 100.00", Decimal("200.00")),
        ("weekend_nights", "2 weekend nights × 150.00", Decimal("300.00")),
    ]
    assert_consistent(q)


def test_a_seasons_weekend_rate_overrides_the_propertys(prop, monday):
    prop.weekend_rate = Decimal("150.00")
    prop.save()
    thursday = monday + timedelta(days=3)
    season(prop, monday, monday + timedelta(days=14), weekend_rate=Decimal("200.00"))
    q = quote(prop, thursday, 3)
    assert lines(q) == [
        ("nights", "1 night × 120.00 (High season)", Decimal("120.00")),
        ("weekend_nights", "2 weekend nights × 200.00 (High season)", Decimal("400.00")),
    ]


def test_a_season_without_weekend_rate_keeps_its_rate_at_weekends(prop, monday):
    prop.weekend_rate = Decimal("150.00")
    prop.save()
    season(prop, monday, monday + timedelta(days=14))
    q = quote(prop, monday + timedelta(days=4), 2)  # Friday and Saturday
    assert lines(q) == [("nights", "2 nights × 120.00 (High season)", Decimal("240.00"))]


def test_a_rate_override_beats_the_season(prop, monday):
    season(prop, monday, monday + timedelta(days=14))
    RateOverride.objects.create(
        tenant=prop.tenant,
        property=prop,
        date=monday + timedelta(days=1),
        nightly_rate=Decimal("99.00"),
        note="Festival deal",
    )
    q = quote(prop, monday, 3)
    assert lines(q) == [
        ("nights", "2 nights × 120.00 (High season)", Decimal("240.00")),
        ("override_nights", "1 night × 99.00 (Festival deal)", Decimal("99.00")),
    ]
    assert_consistent(q)


def test_guests_above_the_base_occupancy_pay_the_extra_guest_fee(prop, monday):
    prop.base_occupancy, prop.extra_guest_fee = 2, Decimal("20.00")
    prop.save()
    q = quote(prop, monday, 3, guests=4)
    extra = q.lines[-1]
    assert (extra.code, extra.quantity, extra.unit_amount, extra.amount) == (
        "extra_guests",
        6,
        Decimal("20.00"),
        Decimal("120.00"),
    )
    assert extra.label == "Extra guests: 2 × 3 nights × 20.00"
    assert q.accommodation == Decimal("420.00")
    assert quote(prop, monday, 3, guests=2).total == Decimal("300.00")


def test_seven_nights_take_the_weekly_discount(prop, monday):
    prop.weekly_discount_percent = Decimal("10")
    prop.save()
    assert quote(prop, monday, 6).total == Decimal("600.00")
    q = quote(prop, monday, 7)
    assert lines(q)[-1] == ("weekly_discount", "Weekly discount −10 %", Decimal("-70.00"))
    assert q.accommodation == q.total == Decimal("630.00")


def test_twenty_eight_nights_take_the_monthly_discount_instead_of_the_weekly(prop, monday):
    prop.weekly_discount_percent = Decimal("10")
    prop.monthly_discount_percent = Decimal("25")
    prop.save()
    assert [line.code for line in quote(prop, monday, 27).lines][-1] == "weekly_discount"
    q = quote(prop, monday, 28)
    codes = [line.code for line in q.lines]
    assert "weekly_discount" not in codes and codes[-1] == "monthly_discount"
    assert q.lines[-1].amount == Decimal("-700.00") and q.total == Decimal("2100.00")


def test_the_discount_covers_extra_guests_not_cleaning(prop, monday):
    prop.weekly_discount_percent = Decimal("10")
    prop.base_occupancy, prop.extra_guest_fee = 1, Decimal("10.00")
    prop.cleaning_fee = Decimal("50.00")
    prop.save()
    q = quote(prop, monday, 7, guests=2)  # 700 + 70 extra, -77, cleaning 50
    assert q.lines[-2].amount == Decimal("-77.00") and q.lines[-1].code == "cleaning"
    assert (q.accommodation, q.cleaning_fee, q.total) == (
        Decimal("693.00"),
        Decimal("50.00"),
        Decimal("743.00"),
    )


def tax(prop, kind, rate, name="Tax"):
    return PropertyTax.objects.create(
        tenant=prop.tenant, property=prop, name=name, kind=kind, rate=Decimal(rate)
    )


def test_a_percentage_tax_is_of_accommodation_and_cleaning(prop, monday):
    prop.cleaning_fee = Decimal("50.00")
    prop.save()
    tax(prop, TaxKind.PERCENT, "10.00", "VAT")
    q = quote(prop, monday, 3)
    assert lines(q)[-1] == ("tax", "VAT 10 %", Decimal("35.00"))
    assert q.taxes == Decimal("35.00") and q.total == Decimal("385.00")


def test_a_per_night_tax_counts_nights(prop, monday):
    tax(prop, TaxKind.PER_NIGHT, "3.00", "Tourism levy")
    q = quote(prop, monday, 4, guests=3)
    assert lines(q)[-1] == ("tax", "Tourism levy: 4 nights × 3.00", Decimal("12.00"))


def test_a_city_tax_counts_guests_and_nights(prop, monday):
    tax(prop, TaxKind.PER_GUEST_NIGHT, "1.50", "City tax")
    q = quote(prop, monday, 4, guests=3)
    line = q.lines[-1]
    assert (line.label, line.quantity, line.amount) == (
        "City tax: 3 guests × 4 nights × 1.50",
        12,
        Decimal("18.00"),
    )
    assert q.taxes == Decimal("18.00")


def test_the_propertys_tax_rate_stays_a_percentage_tax_beside_the_rows(prop, monday):
    prop.tax_rate = Decimal("5.00")
    prop.save()
    tax(prop, TaxKind.PER_GUEST_NIGHT, "1.00", "City tax")
    q = quote(prop, monday, 2, guests=2)
    assert [line.label for line in q.lines if line.code == "tax"] == [
        "Tax 5 %",
        "City tax: 2 guests × 2 nights × 1.00",
    ]
    assert q.taxes == Decimal("14.00")
    assert_consistent(q)


def test_percentages_round_half_up_to_the_cent(prop, monday):
    prop.nightly_rate = Decimal("100.10")
    prop.tax_rate = Decimal("5.00")  # 5.005
    prop.save()
    assert quote(prop, monday, 1).taxes == Decimal("5.01")


# --- On the booking ---------------------------------------------------------------------


def test_a_booking_keeps_its_price_lines_and_the_ledger_split(alice, prop, monday):
    prop.base_occupancy, prop.extra_guest_fee = 2, Decimal("20.00")
    prop.cleaning_fee = Decimal("50.00")
    prop.save()
    tax(prop, TaxKind.PER_GUEST_NIGHT, "2.00", "City tax")
    booking = booking_create(
        tenant=alice.tenant,
        property=prop,
        guest=alice.guest,
        check_in=monday,
        check_out=monday + timedelta(days=2),
        guests_count=3,
    )
    assert [line["code"] for line in booking.price_lines] == [
        "nights",
        "extra_guests",
        "cleaning",
        "tax",
    ]
    assert booking.price_lines[1] == {
        "code": "extra_guests",
        "label": "Extra guests: 1 × 2 nights × 20.00",
        "name": "",
        "quantity": 2,
        "unit_amount": "20.00",
        "amount": "40.00",
    }
    assert (booking.accommodation_amount, booking.cleaning_amount, booking.tax_amount) == (
        Decimal("240.00"),
        Decimal("50.00"),
        Decimal("12.00"),
    )
    assert booking.total == sum(Decimal(line["amount"]) for line in booking.price_lines)

    modified = booking_modify(
        booking=booking, check_in=monday, check_out=monday + timedelta(days=2), guests_count=2
    )
    modified.refresh_from_db()
    assert "extra_guests" not in [line["code"] for line in modified.price_lines]
    assert modified.total == Decimal("258.00")  # 200 + 50 + 2 guests x 2 nights x 2


# --- Season stay rules ------------------------------------------------------------------


def test_a_stay_under_the_seasons_minimum_is_refused(alice, prop, monday):
    season(prop, monday, monday + timedelta(days=30), min_nights=5)
    with pytest.raises(BookingError) as refused:
        booking_create(
            tenant=alice.tenant,
            property=prop,
            guest=alice.guest,
            check_in=monday,
            check_out=monday + timedelta(days=4),
        )
    assert refused.value.code == "too_few_nights" and "High season" in refused.value.message


def test_a_stay_over_the_seasons_maximum_is_refused(alice, prop, monday):
    season(prop, monday, monday + timedelta(days=30), max_nights=3)
    with pytest.raises(BookingError) as refused:
        booking_create(
            tenant=alice.tenant,
            property=prop,
            guest=alice.guest,
            check_in=monday,
            check_out=monday + timedelta(days=4),
        )
    assert refused.value.code == "too_many_nights"


def test_the_check_in_nights_season_decides_the_minimum(alice, prop, monday):
    season(prop, monday + timedelta(days=1), monday + timedelta(days=30), min_nights=5)
    booking = booking_create(  # check-in the night before the season: the property's rule
        tenant=alice.tenant,
        property=prop,
        guest=alice.guest,
        check_in=monday,
        check_out=monday + timedelta(days=2),
    )
    assert booking.nights == 2


def test_a_seasons_minimum_replaces_the_propertys(alice, prop, monday):
    prop.min_nights = 3
    prop.save()
    season(prop, monday, monday + timedelta(days=30), min_nights=1, name="Low season")
    booking = booking_create(
        tenant=alice.tenant,
        property=prop,
        guest=alice.guest,
        check_in=monday,
        check_out=monday + timedelta(days=1),
    )
    assert booking.nights == 1


def test_overlapping_seasons_are_refused_by_the_database(prop, monday):
    from django.db import IntegrityError, transaction

    season(prop, monday, monday + timedelta(days=10))
    with pytest.raises(IntegrityError), transaction.atomic():
        season(prop, monday + timedelta(days=9), monday + timedelta(days=20), name="Other")
    # Touching is not overlapping: the end is exclusive.
    season(prop, monday + timedelta(days=10), monday + timedelta(days=20), name="Next")
