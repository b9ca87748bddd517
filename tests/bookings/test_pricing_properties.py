"""Properties of the one calculation, for random rules and stays (hypothesis).

``price_stay`` is pure: the rules are plain values, so hundreds of combinations
run without the database. The season-minimum refusal runs against the
database, through the quote API and through booking creation.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from bookings.choices import TaxKind
from bookings.errors import BookingError
from bookings.models import Season
from bookings.pricing import OverrideRule, PricingRules, SeasonRule, TaxRule, price_stay
from bookings.services import booking_create
from pms.models import Property
from tests.factories import PropertyFactory

START = date(2030, 1, 1)
money = st.decimals(min_value=0, max_value=5000, places=2, allow_nan=False, allow_infinity=False)
percent = st.decimals(min_value=0, max_value=100, places=2, allow_nan=False, allow_infinity=False)


@st.composite
def rules(draw: st.DrawFn) -> PricingRules:
    prop = Property(
        name="Random",
        nightly_rate=draw(money),
        weekend_rate=draw(st.none() | money),
        cleaning_fee=draw(money),
        tax_rate=draw(percent),
        base_occupancy=draw(st.integers(1, 6)),
        extra_guest_fee=draw(money),
        weekly_discount_percent=draw(percent),
        monthly_discount_percent=draw(percent),
    )
    seasons: list[SeasonRule] = []
    cursor = START
    for _ in range(draw(st.integers(0, 3))):
        start = cursor + timedelta(days=draw(st.integers(0, 20)))
        end = start + timedelta(days=draw(st.integers(1, 30)))
        seasons.append(
            SeasonRule(
                name=f"S{len(seasons)}",
                start=start,
                end=end,
                nightly_rate=draw(money),
                weekend_rate=draw(st.none() | money),
            )
        )
        cursor = end
    overrides = {
        START + timedelta(days=offset): OverrideRule(nightly_rate=draw(money))
        for offset in draw(st.sets(st.integers(0, 60), max_size=5))
    }
    taxes = [
        TaxRule(name=f"T{i}", kind=draw(st.sampled_from(TaxKind.values)), rate=draw(money))
        for i in range(draw(st.integers(0, 3)))
    ]
    return PricingRules(property=prop, overrides=overrides, seasons=seasons, taxes=taxes)


@settings(max_examples=500, deadline=None)
@given(
    rule=rules(),
    offset=st.integers(0, 60),
    nights=st.integers(1, 40),
    guests=st.integers(1, 12),
)
def test_a_quotes_total_is_the_sum_of_its_lines(rule, offset, nights, guests):
    check_in = START + timedelta(days=offset)
    quote = price_stay(
        rule, check_in=check_in, check_out=check_in + timedelta(days=nights), guests=guests
    )
    amounts = [line.amount for line in quote.lines]
    assert quote.total == sum(amounts, Decimal("0"))
    assert quote.total == quote.accommodation + quote.cleaning_fee + quote.taxes
    assert quote.taxes == sum(line.amount for line in quote.lines if line.code == "tax")
    assert all(amount.as_tuple().exponent == -2 for amount in [*amounts, quote.total])
    assert quote.nights == nights
    # Night lines count every night once; at most one discount line.
    night_codes = {"nights", "weekend_nights", "override_nights"}
    assert sum(line.quantity for line in quote.lines if line.code in night_codes) == nights
    assert sum(line.code.endswith("_discount") for line in quote.lines) <= 1
    assert quote.accommodation >= 0 and quote.total >= 0


@pytest.mark.django_db
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(minimum=st.integers(2, 14), data=st.data())
def test_a_stay_under_the_season_minimum_is_refused_by_the_quote_and_the_booking(
    alice, future, minimum, data
):
    nights = data.draw(st.integers(1, minimum - 1))
    into_season = data.draw(st.integers(0, 10))
    prop = PropertyFactory.create(tenant=alice.tenant)
    Season.objects.create(
        tenant=alice.tenant,
        property=prop,
        name="Peak",
        start=future,
        end=future + timedelta(days=30),
        nightly_rate=Decimal("180"),
        min_nights=minimum,
    )
    check_in = future + timedelta(days=into_season)
    check_out = check_in + timedelta(days=nights)
    response = APIClient().get(
        f"/api/v1/properties/{prop.public_id}/quote/",
        {"check_in": check_in.isoformat(), "check_out": check_out.isoformat()},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_few_nights"
    with pytest.raises(BookingError) as refused:
        booking_create(
            tenant=alice.tenant,
            property=prop,
            guest=alice.guest,
            check_in=check_in,
            check_out=check_out,
        )
    assert refused.value.code == "too_few_nights"
    # The minimum itself is fine.
    ok = APIClient().get(
        f"/api/v1/properties/{prop.public_id}/quote/",
        {
            "check_in": check_in.isoformat(),
            "check_out": (check_in + timedelta(days=minimum)).isoformat(),
        },
    )
    assert ok.status_code == 200, ok.json()
