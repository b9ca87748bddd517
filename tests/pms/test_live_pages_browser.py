"""Real Chromium: a manager's open calendar and dashboard update without a reload.

Alice's manager has the calendar of all homes and the dashboard open; so has Bob's.
A guest books through the API, then Airbnb's feed brings a block over the same
nights: both appear on Alice's two pages within 2 s, as a bar, an arrival and a
conflict; Bob's pages receive nothing.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from channelsync.choices import ChannelKind
from channelsync.services import channel_create
from channelsync.tasks import import_channel
from tests.channelsync.support import airbnb_feed
from tests.factories import PASSWORD
from tests.monitoring.browser import browser
from tests.support.http_peer import Reply
from tests.support.servers import ARTIFACTS

pytestmark = [pytest.mark.needs("browser"), pytest.mark.django_db(transaction=True)]

WITHIN_MS = 2_000
# Before the page's own scripts: count every region the live server replaces.
COUNT_UPDATES = """
  window.liveUpdates = 0;
  document.addEventListener("live:updated", () => { window.liveUpdates += 1; });
"""


def _signed_in(chromium, live_server, username: str):
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    context.add_init_script(COUNT_UPDATES)
    page = context.new_page()
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    return context


def _open(context, url: str):
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(url)
    page.wait_for_selector('#live-status[data-state="live"]')
    # Joining brings the page once (what changed between its load and its connection):
    # wait for it, then count from zero. A reload would reset the marker.
    page.wait_for_function("window.liveUpdates >= 1")
    page.evaluate("() => { window.liveUpdates = 0; window.notReloaded = true; }")
    return page


def _within_2_s(calendar, bar: str, dashboard, panel: str) -> None:
    """Both pages show it within WITHIN_MS of now: the calendar's bar, the panel's count 1."""
    started = time.monotonic()
    calendar.wait_for_selector(bar, timeout=WITHIN_MS)
    left = WITHIN_MS - (time.monotonic() - started) * 1000
    dashboard.wait_for_function(
        f"document.querySelector('#panel-{panel} .count').textContent.trim() === '1'",
        timeout=max(left, 1),
    )


def _import(channel_id: int) -> str:
    """The import, off the thread Playwright's event loop runs on (Django refuses it)."""

    def run() -> str:
        try:
            return import_channel(channel_id)
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result(timeout=60)


def _book_through_the_api(live_server, world, check_in) -> None:
    body = {
        "property": str(world.property.public_id),
        "check_in": check_in.isoformat(),
        "check_out": (check_in + timedelta(days=3)).isoformat(),
        "guests": 2,
        "guest": {"name": "Greta Live", "email": "greta@example.test"},
    }
    request = urllib.request.Request(
        f"{live_server.url}/api/v1/bookings/",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Idempotency-Key": str(uuid.uuid4())},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201, response.read()


def test_a_booking_and_an_imported_block_appear_on_the_open_pages_of_their_tenant_only(
    settings, live_server, live_pages_server, live_worker, peer, alice, bob
):
    settings.LIVE_PORT = live_pages_server.port
    ARTIFACTS.mkdir(exist_ok=True)
    today = timezone.localdate()
    channel = channel_create(
        tenant=alice.tenant,
        property=alice.property,
        name="Airbnb",
        kind=ChannelKind.AIRBNB,
        import_url=peer.url("/feed.ics"),
        poll_interval=timedelta(hours=6),
    )
    calendar_url = f"{live_server.url}/admin/bookings/booking/calendar/"
    dashboard_url = f"{live_server.url}/admin/"

    with browser() as chromium:
        alices, bobs = (
            _signed_in(chromium, live_server, world.manager.username) for world in (alice, bob)
        )
        calendar, dashboard = _open(alices, calendar_url), _open(alices, dashboard_url)
        their_calendar, their_dashboard = _open(bobs, calendar_url), _open(bobs, dashboard_url)
        assert dashboard.locator("#panel-arrivals .count").inner_text() == "0"

        assert calendar.locator("#multi-calendar .mc-bar").count() == 0
        _book_through_the_api(live_server, alice, today)
        _within_2_s(calendar, "#multi-calendar .mc-bar.src-direct", dashboard, "arrivals")
        assert "Greta Live" in dashboard.locator("#panel-arrivals").inner_text()
        assert "Greta Live" in calendar.locator("#multi-calendar .mc-bar.src-direct").inner_text()

        # Airbnb's feed closes the same nights: a block, and a conflict with the booking.
        peer.routes["/feed.ics"] = Reply(
            200,
            airbnb_feed(
                (
                    "n1",
                    today + timedelta(days=1),
                    today + timedelta(days=2),
                    "Airbnb (Not available)",
                )
            ),
            {"Content-Type": "text/calendar"},
        )
        assert _import(channel.pk) == "imported"
        _within_2_s(calendar, "#multi-calendar .mc-bar.block", dashboard, "conflicts")
        assert calendar.locator("#multi-calendar .mc-bar.conflict").count() >= 1
        calendar.screenshot(path=str(ARTIFACTS / "live-calendar.png"), full_page=True)
        dashboard.screenshot(path=str(ARTIFACTS / "live-dashboard.png"), full_page=True)

        for page in (calendar, dashboard):
            assert page.evaluate("window.notReloaded") is True
            assert page.evaluate("window.liveUpdates") >= 1
        # Bob's pages: no update arrived, and nothing of Alice's is on them.
        time.sleep(1.5)
        for page in (their_calendar, their_dashboard):
            assert page.evaluate("window.liveUpdates") == 0
            assert page.evaluate("window.notReloaded") is True
            text = page.locator("#content").inner_text()
            assert "Greta Live" not in text and "Alice Villa" not in text
        assert their_calendar.locator("#multi-calendar .mc-bar").count() == 0
        assert their_dashboard.locator("#panel-arrivals .count").inner_text() == "0"


def test_a_page_says_so_when_live_updates_are_down_and_offers_a_reload(
    settings, live_server, alice
):
    settings.LIVE_PORT = 9  # nothing listens there (discard port, closed on loopback)
    with browser() as chromium:
        page = _signed_in(chromium, live_server, alice.manager.username).new_page()
        page.goto(f"{live_server.url}/admin/bookings/booking/calendar/")
        status = page.wait_for_selector('#live-status[data-state="off"] button')
        assert "reload to see changes" in page.locator("#live-status").inner_text()
        assert status.inner_text() == "Reload"
