"""Admin > Bookings > Calendar: homes as rows, days as columns, bars for stays and blocks."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from bookings.services import block_create, booking_create
from tenants.choices import Role
from tenants.services import membership_grant
from tests.factories import GuestFactory, PropertyFactory, UserFactory

pytestmark = pytest.mark.django_db

URL = "/admin/bookings/booking/calendar/"


def _homes(world, count: int, start: date) -> list:
    homes = []
    for index in range(count):
        home = PropertyFactory.create(
            tenant=world.tenant, name=f"{world.tenant.name} Home {index:03}"
        )
        guest = GuestFactory.create(tenant=world.tenant, name=f"Guest {world.tenant.slug} {index}")
        booking_create(
            tenant=world.tenant,
            property=home,
            guest=guest,
            check_in=start + timedelta(days=2),
            check_out=start + timedelta(days=5),
        )
        homes.append(home)
    return homes


def _page(client, user, **params):
    client.force_login(user)
    response = client.get(URL, params)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def test_each_home_is_a_row_with_its_stays_as_bars(client, alice, bob, future):
    _homes(alice, 3, future)
    _homes(bob, 2, future)
    html = _page(client, alice.manager, start=future.isoformat(), days=14)
    assert html.count('role="rowheader"') == 4  # Alice Villa and three homes
    assert "Guest alice 0" in html and "Guest bob" not in html and "Bob Home" not in html
    # check-in two days into the window, three nights: columns 3 to 5 (+1 for the names)
    assert re.search(r'grid-column: 4 / span 3" title="Guest alice 0"', html)


def test_a_block_over_a_stay_marks_both_as_a_conflict(client, alice, future):
    booking_create(
        tenant=alice.tenant,
        property=alice.property,
        guest=alice.guest,
        check_in=future,
        check_out=future + timedelta(days=3),
    )
    block_create(
        tenant=alice.tenant,
        property=alice.property,
        start=future + timedelta(days=1),
        end=future + timedelta(days=2),
        label="Airbnb: Reserved",
        source="channel",
        allow_overlap=True,
    )
    html = _page(client, alice.manager, start=future.isoformat())
    assert len(re.findall(r'class="mc-bar [^"]*\bconflict"', html)) == 2


def test_a_free_night_offers_a_booking_or_a_block_that_opens_prefilled(client, alice, future):
    html = _page(client, alice.manager, start=future.isoformat(), days=14)
    # The night is a link that starts a booking (no script needed); the page's one menu
    # (multi_calendar.js) adds the block, from the link's property and nights.
    free = re.search(
        r'<a class="mc-cell mc-free[^"]*"[^>]* href="([^"]+)" data-day="([^"]+)"', html
    )
    menu = re.search(r'id="mc-menu"[^>]* data-add-block="([^"]+)"', html)
    assert free is not None and menu is not None
    assert free.group(2) == f"{future.day} {future:%b}"
    form = client.get(free.group(1).replace("&amp;", "&"))
    assert form.status_code == 200
    initial = form.context["adminform"].form.initial
    assert str(initial["property"]) == str(alice.property.pk)
    assert initial["check_in"] == future.isoformat()
    assert initial["check_out"] == (future + timedelta(days=1)).isoformat()
    block = client.get(
        menu.group(1),
        {"property": alice.property.pk, "start": future, "end": future + timedelta(days=1)},
    )
    assert block.status_code == 200
    assert block.context["adminform"].form.initial["start"] == future.isoformat()


def test_names_and_labels_are_escaped(client, alice, future):
    alice.property.name = '<img src=x onerror="alert(1)">'
    alice.property.save(update_fields=["name"])
    alice.guest.name = "<script>alert(2)</script>"
    alice.guest.save(update_fields=["name"])
    booking_create(
        tenant=alice.tenant,
        property=alice.property,
        guest=alice.guest,
        check_in=future,
        check_out=future + timedelta(days=2),
    )
    html = _page(client, alice.manager, start=future.isoformat(), days=14)
    assert "<img src=x" not in html and "<script>alert" not in html
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html
    assert 'aria-label="' + f"{(future + timedelta(days=2)).day}" in html


def test_the_calendar_costs_the_same_queries_for_two_homes_or_forty(client, alice, future):
    _homes(alice, 1, future)
    client.force_login(alice.manager)
    client.get(URL)
    with CaptureQueriesContext(connection) as small:
        client.get(URL, {"start": future.isoformat()})
    _homes(alice, 39, future + timedelta(days=7))
    with CaptureQueriesContext(connection) as large:
        html = client.get(URL, {"start": future.isoformat()}).content.decode()
    assert html.count('role="rowheader"') == 41
    assert len(large) == len(small), [q["sql"][:100] for q in large.captured_queries]


def test_a_bad_start_shows_today_with_a_warning_and_a_cleaner_may_not_look(client, alice):
    html = _page(client, alice.manager, start="2026-13-45", days="999")
    assert "is not a day this page can show" in html
    cleaner = UserFactory.create(username="alice-cleaner")
    membership_grant(user=cleaner, tenant=alice.tenant, role=Role.CLEANER)
    client.force_login(cleaner)
    assert client.get(URL).status_code == 403
