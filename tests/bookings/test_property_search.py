"""The booking engine's search: a tenant's properties that can take a stay, each priced."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from bookings.choices import TaxKind
from bookings.models import PropertyTax, RateOverride, Season
from bookings.services import block_create, booking_create
from tests.factories import PropertyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def api() -> APIClient:
    return APIClient()


def search(api, world, **params):
    return api.get(f"/api/v1/tenants/{world.tenant.slug}/properties/", params)


def stay(check_in, nights=3, **extra):
    return {
        "check_in": check_in.isoformat(),
        "check_out": (check_in + timedelta(days=nights)).isoformat(),
        **extra,
    }


def names(response):
    assert response.status_code == 200, response.json()
    return [item["name"] for item in response.json()["results"]]


def error_code(response):
    return response.json()["error"]["code"]


def test_without_dates_lists_the_tenants_active_properties_by_name(api, alice, bob):
    PropertyFactory.create(tenant=alice.tenant, name="Aardvark Cottage")
    PropertyFactory.create(tenant=alice.tenant, name="Closed Barn", is_active=False)
    response = search(api, alice)
    assert names(response) == ["Aardvark Cottage", "Alice Villa"]
    assert response.json()["count"] == 2
    assert all(item["quote"] is None for item in response.json()["results"])


def test_another_tenants_properties_never_appear(api, alice, bob, future):
    searches: list[dict[str, str]] = [{}, stay(future)]
    for params in searches:
        body = search(api, bob, **params).content.decode()
        assert alice.property.name not in body and str(alice.property.public_id) not in body
        assert names(search(api, bob, **params)) == ["Bob Villa"]


def test_an_unknown_tenant_is_a_json_404(api):
    response = api.get("/api/v1/tenants/nobody-here/properties/")
    assert response.status_code == 404 and error_code(response) == "not_found"


def test_with_dates_only_properties_that_can_take_the_stay_are_listed(api, alice, future):
    booked = PropertyFactory.create(tenant=alice.tenant, name="Booked Loft")
    blocked = PropertyFactory.create(tenant=alice.tenant, name="Blocked Loft")
    PropertyFactory.create(tenant=alice.tenant, name="Small Studio", max_guests=1)
    PropertyFactory.create(tenant=alice.tenant, name="Long Stays Only", min_nights=7)
    PropertyFactory.create(tenant=alice.tenant, name="Short Stays Only", max_nights=2)
    in_season = PropertyFactory.create(tenant=alice.tenant, name="Seasonal House")
    Season.objects.create(
        tenant=alice.tenant,
        property=in_season,
        name="Peak",
        start=future,
        end=future + timedelta(days=30),
        nightly_rate=Decimal("150"),
        min_nights=5,
    )
    PropertyFactory.create(tenant=alice.tenant, name="Free Later", booking_horizon_days=10)
    booking_create(
        tenant=alice.tenant,
        property=booked,
        guest=alice.guest,
        check_in=future + timedelta(days=2),
        check_out=future + timedelta(days=4),
    )
    block_create(
        tenant=alice.tenant, property=blocked, start=future, end=future + timedelta(days=1)
    )
    assert names(search(api, alice, **stay(future, guests=2))) == ["Alice Villa"]
    # Touching stays are fine: the booking's check-in day is our check-out day.
    assert "Booked Loft" in names(search(api, alice, **stay(future, nights=2, guests=2)))
    # Five nights meet the season's minimum.
    assert "Seasonal House" in names(search(api, alice, **stay(future, nights=5, guests=2)))


def test_each_result_carries_its_quote_with_lines_summing_to_the_total(api, alice, future):
    prop = alice.property
    prop.extra_guest_fee, prop.base_occupancy = Decimal("15.00"), 2
    prop.save()
    PropertyTax.objects.create(
        tenant=alice.tenant, property=prop, name="City tax", kind=TaxKind.PER_GUEST_NIGHT, rate=2
    )
    item = search(api, alice, **stay(future, guests=3)).json()["results"][0]
    quote = item["quote"]
    assert quote["nights"] == 3 and quote["guests"] == 3 and quote["available"] is True
    assert [line["code"] for line in quote["lines"]] == [
        "nights",
        "extra_guests",
        "cleaning",
        "tax",
    ]
    assert Decimal(quote["total"]) == sum(Decimal(line["amount"]) for line in quote["lines"])
    assert quote["total"] == "413.00"  # 300 + 45 + 50 + 18
    detail = (
        APIClient()
        .get(f"/api/v1/properties/{prop.public_id}/quote/", stay(future, guests=3))
        .json()
    )
    assert detail["lines"] == quote["lines"] and detail["total"] == quote["total"]


def test_results_are_paginated_up_to_one_hundred_a_page(api, alice):
    PropertyFactory.create_batch(104, tenant=alice.tenant)
    first = search(api, alice, page_size=10).json()
    assert first["count"] == 105 and len(first["results"]) == 10 and first["next"]
    second = api.get(first["next"]).json()
    assert not {r["id"] for r in first["results"]} & {r["id"] for r in second["results"]}
    assert len(search(api, alice, page_size=1000).json()["results"]) == 100
    assert len(search(api, alice).json()["results"]) == 20
    response = search(api, alice, page=99)
    assert response.status_code == 404 and error_code(response) == "not_found"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"check_in": "2099-01-01"}, "incomplete_dates"),
        ({"check_out": "2099-01-01"}, "incomplete_dates"),
        ({"check_in": "2099-01-05", "check_out": "2099-01-01"}, "invalid_dates"),
        ({"check_in": "2099-01-05", "check_out": "2099-01-05"}, "invalid_dates"),
        ({"check_in": "2000-01-01", "check_out": "2000-01-03"}, "past_date"),
        ({"check_in": "2099-13-01", "check_out": "2099-12-03"}, "invalid"),
        ({"check_in": "2099-01-01", "check_out": "2101-01-03"}, "invalid"),
        ({"guests": 0}, "invalid"),
        ({"guests": "many"}, "invalid"),
    ],
)
def test_bad_search_input_is_a_400_with_a_code(api, alice, params, code):
    response = search(api, alice, **params)
    assert response.status_code == 400 and error_code(response) == code, response.json()


def test_guests_filter_without_dates_too(api, alice):
    PropertyFactory.create(tenant=alice.tenant, name="Big House", max_guests=10)
    assert names(search(api, alice, guests=6)) == ["Big House"]


def _priced_properties(tenant, count, future):
    props = PropertyFactory.create_batch(count, tenant=tenant)
    for prop in props:
        Season.objects.create(
            tenant=tenant,
            property=prop,
            name="Peak",
            start=future,
            end=future + timedelta(days=2),
            nightly_rate=Decimal("140"),
        )
        RateOverride.objects.create(
            tenant=tenant, property=prop, date=future + timedelta(days=2), nightly_rate=90
        )
        PropertyTax.objects.create(tenant=tenant, property=prop, name="VAT", rate=10)
        PropertyTax.objects.create(
            tenant=tenant, property=prop, name="City", kind=TaxKind.PER_NIGHT, rate=1
        )
    return props


@pytest.mark.parametrize("dated", [True, False])
def test_the_number_of_queries_does_not_grow_with_the_properties(api, alice, bob, future, dated):
    params = {**stay(future), "page_size": 100} if dated else {"page_size": 100}
    _priced_properties(alice.tenant, 2, future)  # 3 with Alice's villa
    _priced_properties(bob.tenant, 29, future)  # 30 with Bob's
    counts = []
    for world, expected in ((alice, 3), (bob, 30)):
        with CaptureQueriesContext(connection) as queries:
            response = search(api, world, **params)
        assert response.status_code == 200 and len(response.json()["results"]) == expected
        counts.append(len(queries))
    assert counts[0] == counts[1], counts
    # The tenant, the page with its total, and (with dates) the pricing rules.
    assert counts[1] == (3 if dated else 2), counts
    if dated:
        item = next(r["quote"] for r in response.json()["results"] if r["name"].startswith("Villa"))
        assert [line["code"] for line in item["lines"]] == [
            "nights",
            "override_nights",
            "cleaning",
            "tax",
            "tax",
        ]


def test_the_direct_quote_rendering_is_what_the_serializer_renders(alice, future):
    from bookings.api.serializers import QuoteSerializer, quote_representation
    from bookings.pricing import quote_stay

    prop = alice.property
    prop.weekly_discount_percent = Decimal("12.5")
    prop.tax_rate = Decimal("7")
    prop.save()
    quote = quote_stay(
        property=prop, check_in=future, check_out=future + timedelta(days=8), guests=2
    )
    rendered = quote_representation(quote, available=False)
    data = {
        **vars(quote),
        "nights": quote.nights,
        "nightly": [{"date": day, "rate": rate} for day, rate in quote.nightly],
        "lines": [vars(line) for line in quote.lines],
        "available": False,
    }
    assert QuoteSerializer(data).data == rendered
    assert any(line["code"] == "weekly_discount" for line in rendered["lines"])


def test_the_direct_property_rendering_is_what_the_serializer_renders(alice, future):
    from bookings.api.serializers import (
        PropertySearchResultSerializer,
        property_search_representation,
        quote_representation,
    )
    from bookings.pricing import quote_stay
    from pms.models import Property

    prop = Property.objects.get(pk=alice.property.pk)  # as loaded: times are times
    assert property_search_representation(prop) == PropertySearchResultSerializer(prop).data
    quote = quote_stay(property=prop, check_in=future, check_out=future + timedelta(days=2))
    prop.search_quote = quote_representation(quote, available=True)  # type: ignore[attr-defined]
    assert property_search_representation(prop) == PropertySearchResultSerializer(prop).data
