"""A manager of tenant A sees and edits only tenant A: rows, choices and objects."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from bookings.services import booking_create
from tests.factories import PASSWORD


@pytest.fixture
def bob_booking(bob, future):
    return booking_create(
        tenant=bob.tenant,
        property=bob.property,
        guest=bob.guest,
        check_in=future,
        check_out=future + timedelta(days=2),
    )


@pytest.fixture
def alice_client(client, alice):
    client.login(username=alice.manager.username, password=PASSWORD)
    return client


@pytest.mark.parametrize(
    "url",
    [
        "/admin/pms/property/",
        "/admin/pms/guest/",
        "/admin/bookings/booking/",
        "/admin/pms/domainevent/",
    ],
)
def test_changelists_show_no_row_of_the_other_tenant(
    alice_client, alice, bob, bob_booking, url
) -> None:
    response = alice_client.get(url)
    assert response.status_code == 200
    body = response.content.decode()
    for secret in (bob.property.name, bob.guest.name, bob_booking.reference):
        assert secret not in body


def test_foreign_key_choices_exclude_the_other_tenant(alice_client, alice, bob) -> None:
    body = alice_client.get("/admin/bookings/booking/add/").content.decode()
    assert alice.property.name in body
    assert bob.property.name not in body
    tenant_select = re.search(r'<select name="tenant".*?</select>', body, re.S)
    assert tenant_select is not None
    assert "Alice" in tenant_select.group(0) and "Bob" not in tenant_select.group(0)


@pytest.mark.parametrize("suffix", ["change/", "delete/", "history/"])
def test_objects_of_the_other_tenant_answer_404(alice_client, bob, bob_booking, suffix) -> None:
    for url in (
        f"/admin/pms/property/{bob.property.pk}/{suffix}",
        f"/admin/pms/guest/{bob.guest.pk}/{suffix}",
        f"/admin/bookings/booking/{bob_booking.pk}/{suffix}",
    ):
        assert alice_client.get(url).status_code == 404, url


def test_the_other_tenants_calendar_answers_404(alice_client, alice, bob) -> None:
    assert (
        alice_client.get(
            f"/admin/bookings/booking/property/{alice.property.pk}/calendar/"
        ).status_code
        == 200
    )
    assert (
        alice_client.get(
            f"/admin/bookings/booking/property/{bob.property.pk}/calendar/"
        ).status_code
        == 404
    )


def test_autocomplete_returns_no_guest_of_the_other_tenant(alice_client, alice, bob) -> None:
    response = alice_client.get(
        "/admin/autocomplete/",
        {"app_label": "bookings", "model_name": "booking", "field_name": "guest", "term": "Guest"},
    )
    assert response.status_code == 200
    names = [item["text"] for item in response.json()["results"]]
    assert any(alice.guest.name in name for name in names)
    assert not any(bob.guest.name in name for name in names)


def test_posting_a_booking_with_the_other_tenants_property_is_refused(
    alice_client, alice, bob, future
) -> None:
    response = alice_client.post(
        "/admin/bookings/booking/add/",
        {
            "tenant": alice.tenant.pk,
            "property": bob.property.pk,
            "guest": alice.guest.pk,
            "check_in": future.isoformat(),
            "check_out": (future + timedelta(days=2)).isoformat(),
            "guests_count": 1,
            "source": "admin",
        },
    )
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()


def test_an_outsider_with_staff_flag_sees_nothing(client, outsider, alice) -> None:
    client.login(username=outsider.username, password=PASSWORD)
    assert client.get("/admin/pms/property/").status_code == 403


def test_superuser_sees_every_tenant(client, superuser, alice, bob) -> None:
    client.login(username="root", password=PASSWORD)
    body = client.get("/admin/pms/property/").content.decode()
    assert alice.property.name in body and bob.property.name in body
