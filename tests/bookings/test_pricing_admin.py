"""Managers edit seasons and taxes beside the property; each tenant sees only its own."""

# The labels carry the typographic signs a guest reads (multiplication, minus).
# ruff: noqa: RUF001

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from bookings.choices import TaxKind
from bookings.models import PropertyTax, Season
from bookings.services import booking_create
from tests.factories import PASSWORD
from tests.support.admin_forms import change_form_data

pytestmark = pytest.mark.django_db


def property_url(world):
    return f"/admin/pms/property/{world.property.pk}/change/"


def season_rows(prefix, index, start, end, name="High", rate="150.00"):
    return {
        f"{prefix}-{index}-name": name,
        f"{prefix}-{index}-start": start.isoformat(),
        f"{prefix}-{index}-end": end.isoformat(),
        f"{prefix}-{index}-nightly_rate": rate,
        f"{prefix}-{index}-weekend_rate": "",
        f"{prefix}-{index}-min_nights": "3",
        f"{prefix}-{index}-max_nights": "",
    }


def test_a_manager_adds_seasons_and_taxes_on_the_property_page(client, alice, future):
    client.login(username=alice.manager.username, password=PASSWORD)
    url = property_url(alice)
    data = change_form_data(client, url)
    data.update(season_rows("seasons", 0, future, future + timedelta(days=30)))
    data["seasons-TOTAL_FORMS"] = 1
    data.update(
        {
            "taxes-TOTAL_FORMS": 1,
            "taxes-0-name": "City tax",
            "taxes-0-kind": TaxKind.PER_GUEST_NIGHT,
            "taxes-0-rate": "2.00",
        }
    )
    response = client.post(url, data)
    assert response.status_code == 302, response.context["inline_admin_formsets"][0].formset.errors
    season = Season.objects.get(property=alice.property)
    assert (season.tenant, season.name, season.min_nights) == (alice.tenant, "High", 3)
    assert PropertyTax.objects.get(property=alice.property).tenant == alice.tenant


def test_overlapping_seasons_are_a_form_error_not_a_crash(client, alice, future):
    Season.objects.create(
        tenant=alice.tenant,
        property=alice.property,
        name="Existing",
        start=future,
        end=future + timedelta(days=10),
        nightly_rate=Decimal("120"),
    )
    client.login(username=alice.manager.username, password=PASSWORD)
    url = property_url(alice)
    data = change_form_data(client, url)
    data.update(season_rows("seasons", 1, future + timedelta(days=5), future + timedelta(days=15)))
    data["seasons-TOTAL_FORMS"] = 2
    data.update(
        {
            "seasons-0-name": "Existing",
            "seasons-0-start": future.isoformat(),
            "seasons-0-end": (future + timedelta(days=10)).isoformat(),
            "seasons-0-nightly_rate": "120.00",
        }
    )
    response = client.post(url, data)
    assert response.status_code == 200
    errors = [f.formset.errors for f in response.context["inline_admin_formsets"]]
    assert "overlaps another season" in response.content.decode(), errors
    assert Season.objects.count() == 1

    # Two new seasons overlapping each other in one submission.
    data = change_form_data(client, url)
    data.update(season_rows("seasons", 1, future + timedelta(days=20), future + timedelta(days=30)))
    data.update(
        season_rows("seasons", 2, future + timedelta(days=25), future + timedelta(days=35), "B")
    )
    data.update(
        {
            "seasons-TOTAL_FORMS": 3,
            "seasons-0-name": "Existing",
            "seasons-0-start": future.isoformat(),
            "seasons-0-end": (future + timedelta(days=10)).isoformat(),
            "seasons-0-nightly_rate": "120.00",
        }
    )
    response = client.post(url, data)
    assert response.status_code == 200 and "overlaps another season" in response.content.decode()
    assert Season.objects.count() == 1


def test_the_standalone_season_form_refuses_overlaps_and_foreign_properties(
    client, alice, bob, future
):
    Season.objects.create(
        tenant=alice.tenant,
        property=alice.property,
        name="Existing",
        start=future,
        end=future + timedelta(days=10),
        nightly_rate=Decimal("120"),
    )
    client.login(username=alice.manager.username, password=PASSWORD)
    body = {
        "tenant": alice.tenant.pk,
        "property": alice.property.pk,
        "name": "Clash",
        "start": (future + timedelta(days=3)).isoformat(),
        "end": (future + timedelta(days=4)).isoformat(),
        "nightly_rate": "100.00",
    }
    response = client.post("/admin/bookings/season/add/", body)
    assert response.status_code == 200 and "overlaps another season" in response.content.decode()
    response = client.post("/admin/bookings/season/add/", {**body, "property": bob.property.pk})
    assert response.status_code == 200 and Season.objects.count() == 1


def test_another_tenant_never_sees_the_seasons_or_taxes(client, alice, bob, future):
    season = Season.objects.create(
        tenant=alice.tenant,
        property=alice.property,
        name="Alice Secret Season",
        start=future,
        end=future + timedelta(days=10),
        nightly_rate=Decimal("120"),
    )
    tax = PropertyTax.objects.create(
        tenant=alice.tenant, property=alice.property, name="Alice Secret Tax", rate=5
    )
    client.login(username=bob.manager.username, password=PASSWORD)
    for url in ("/admin/bookings/season/", "/admin/bookings/propertytax/", property_url(bob)):
        body = client.get(url).content.decode()
        assert "Alice Secret" not in body
    assert client.get(f"/admin/bookings/season/{season.pk}/change/").status_code == 404
    assert client.get(f"/admin/bookings/propertytax/{tax.pk}/change/").status_code == 404
    assert client.get(property_url(alice)).status_code == 404


def test_the_booking_page_shows_the_price_lines(client, alice, future):
    booking = booking_create(
        tenant=alice.tenant,
        property=alice.property,
        guest=alice.guest,
        check_in=future,
        check_out=future + timedelta(days=2),
    )
    client.login(username=alice.manager.username, password=PASSWORD)
    page = client.get(f"/admin/bookings/booking/{booking.pk}/change/").content.decode()
    assert "2 nights × 100.00" in page and "Cleaning" in page and "250.00" in page
