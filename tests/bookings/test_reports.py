"""Monthly reports: occupancy, ADR and RevPAR from the nights a stay spends in the month."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from bookings.models import Booking
from bookings.reports import month_report
from bookings.services import booking_cancel, booking_create
from tests.factories import PropertyFactory

pytestmark = pytest.mark.django_db

MONTH = date(2030, 3, 1)  # 31 nights


def _stay(world, prop, check_in: date, nights: int, source: str = "direct"):
    booking = booking_create(
        tenant=world.tenant,
        property=prop,
        guest=world.guest,
        check_in=check_in,
        check_out=check_in + timedelta(days=nights),
        source=source,
        allow_past=True,
    )
    # A known price: 100 a night of accommodation, whatever the factory's rates.
    Booking.objects.filter(pk=booking.pk).update(accommodation_amount=Decimal(100 * nights))
    return booking


@pytest.fixture
def homes(alice, settings):
    settings.BOOKING_HORIZON_DAYS = 3650
    return [PropertyFactory.create(tenant=alice.tenant, name=f"Home {n}") for n in range(2)]


def test_a_stay_across_months_counts_its_nights_in_each(alice, homes):
    first, second = homes
    _stay(alice, first, MONTH + timedelta(days=28), 6)  # 3 nights in March, 3 in April
    _stay(alice, first, MONTH + timedelta(days=2), 4, source="airbnb")
    cancelled = _stay(alice, second, MONTH + timedelta(days=10), 5)
    booking_cancel(booking=cancelled)
    report = month_report(properties=homes, month=MONTH)
    one, two = report.homes
    assert (one.sold, one.nights) == (7, 31)
    assert one.revenue == Decimal("700.00") and one.adr == Decimal("100.00")
    assert one.occupancy == Decimal("22.58") and one.revpar == Decimal("22.58")
    assert one.by_channel == {"direct": Decimal("300.00"), "airbnb": Decimal("400.00")}
    assert two.sold == 0 and two.cancellations == 1
    assert report.occupancy == Decimal("11.29")  # 7 of 62 nights
    assert report.channel_revenue() == [
        ("direct", Decimal("300.00")),
        ("airbnb", Decimal("400.00")),
    ]
    april = month_report(properties=homes, month=date(2030, 4, 1)).homes[0]
    assert april.sold == 3 and april.revenue == Decimal("300.00")


def test_the_report_page_charts_and_exports_only_the_users_tenants(
    client, alice, bob, homes, settings
):
    _stay(alice, homes[0], MONTH + timedelta(days=5), 3)
    bobs = PropertyFactory.create(tenant=bob.tenant, name="Bob Chalet")
    _stay(bob, bobs, MONTH + timedelta(days=5), 3)
    client.force_login(alice.manager)
    page = client.get("/admin/bookings/ledgerentry/reports/", {"month": "2030-03"})
    html = page.content.decode()
    assert page.status_code == 200 and "Bob Chalet" not in html
    assert 'id="kpi-revenue">300.00<' in html and "rp-trend" in html
    export = client.get(
        "/admin/bookings/ledgerentry/reports/", {"month": "2030-03", "format": "csv"}
    )
    rows = list(csv.reader(io.StringIO(export.content.decode())))
    assert rows[0][:6] == [
        "home",
        "tenant",
        "nights",
        "nights sold",
        "nights blocked",
        "occupancy %",
    ]
    names = {row[0] for row in rows[1:]}
    assert "Bob Chalet" not in names and "Home 0" in names


def test_the_report_costs_the_same_queries_for_two_homes_or_twenty(client, alice, homes, settings):
    client.force_login(alice.manager)
    client.get("/admin/bookings/ledgerentry/reports/")
    with CaptureQueriesContext(connection) as small:
        client.get("/admin/bookings/ledgerentry/reports/", {"month": "2030-03"})
    for n in range(18):
        home = PropertyFactory.create(tenant=alice.tenant, name=f"More {n}")
        _stay(alice, home, MONTH + timedelta(days=n), 2)
    with CaptureQueriesContext(connection) as large:
        client.get("/admin/bookings/ledgerentry/reports/", {"month": "2030-03"})
    assert len(large) == len(small)


def test_staff_without_the_ledger_get_no_reports(client, alice):
    client.force_login(alice.staff)
    assert client.get("/admin/bookings/ledgerentry/reports/").status_code in (403, 404)


def test_the_owner_statement_nets_the_managers_fee_from_the_revenue(client, alice, bob, future):
    import random

    from tests.bookings.test_ledger import deliver_all

    home = PropertyFactory.create(
        tenant=alice.tenant, name="Owner Home", management_fee_percent=Decimal("20")
    )
    booking_create(
        tenant=alice.tenant,
        property=home,
        guest=alice.guest,
        check_in=future,
        check_out=future + timedelta(days=2),
    )
    deliver_all(random.Random(1))  # the ledger books the stay
    month = date.today().strftime("%Y-%m")  # ledger entries are dated when booked
    client.force_login(alice.manager)
    page = client.get(
        "/admin/bookings/ledgerentry/reports/owner/", {"property": home.pk, "month": month}
    )
    html = page.content.decode()
    assert page.status_code == 200, page.status_code
    accommodation = Decimal(html.split('id="os-accommodation">')[1].split("<")[0])
    assert accommodation > 0
    assert (
        f'id="os-fee">\N{MINUS SIGN}{(accommodation * Decimal("0.2")).quantize(Decimal("0.01"))}<'
        in html
    )
    assert (
        f'id="os-net">{accommodation - (accommodation * Decimal("0.2")).quantize(Decimal("0.01"))}<'
        in html
    )
    client.force_login(bob.manager)
    assert (
        client.get("/admin/bookings/ledgerentry/reports/owner/", {"property": home.pk}).status_code
        == 404
    )
