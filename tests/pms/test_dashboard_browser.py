"""Real Chromium: the manager's dashboard on a desktop, the cleaner's on a phone."""

from __future__ import annotations

import pytest

from automation.models import CleaningTask
from tenants.choices import Role
from tenants.services import membership_grant
from tests.factories import PASSWORD, UserFactory
from tests.monitoring.browser import browser_page
from tests.pms.test_dashboard import _day
from tests.support.pipeline import assert_pipeline_settled
from tests.support.servers import ARTIFACTS

pytestmark = [pytest.mark.needs("browser"), pytest.mark.django_db(transaction=True)]


def _login(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")


def test_the_manager_and_the_cleaner_open_their_dashboards(live_server, live_worker, alice, bob):
    ARTIFACTS.mkdir(exist_ok=True)
    _day(alice, n_properties=3)
    _day(bob)
    # The day's events run their handlers on the worker (cleaning tasks among them): let
    # them finish before the tasks are handed to the cleaner, or the two UPDATEs of the
    # same rows can deadlock (seen in CI).
    assert_pipeline_settled()
    cleaner = UserFactory.create(username="alice-cleaner")
    membership_grant(user=cleaner, tenant=alice.tenant, role=Role.CLEANER)
    CleaningTask.objects.filter(tenant=alice.tenant).update(assignee=cleaner)

    with browser_page() as page:
        _login(page, live_server, alice.manager.username)
        page.wait_for_selector("#dashboard")
        assert page.locator("#panel-arrivals .count").inner_text() == "3"
        assert page.locator("#panel-conflicts .count").inner_text() == "1"
        assert "Bob" not in page.locator("#dashboard").inner_text()
        page.screenshot(path=str(ARTIFACTS / "dashboard-manager.png"), full_page=True)
        page.click("#panel-turnovers a.count")
        page.wait_for_selector("#result_list")
        assert page.locator("#result_list tbody tr").count() == 3
        page.goto(f"{live_server.url}/admin/")
        page.locator("#panel-arrivals li a").first.click()
        page.wait_for_selector("#story")
        assert "booking.created" in page.locator("#story").inner_text()
        page.screenshot(path=str(ARTIFACTS / "booking-story.png"), full_page=True)
        page.goto(f"{live_server.url}/admin/")
        page.click("#open-calendar")
        page.wait_for_selector("#multi-calendar")
        assert page.locator('[role="rowheader"]').count() == 3
        assert page.locator(".mc-bar.conflict").count() == 2
        page.locator("a.mc-free").first.click()  # the page's one menu opens beside it
        page.wait_for_selector("#mc-menu:not([hidden])")
        page.screenshot(path=str(ARTIFACTS / "calendar-manager.png"), full_page=True)
        page.keyboard.press("Escape")
        assert page.locator("#mc-menu").is_hidden()
        page.locator("a.mc-free").first.click()
        page.click("#mc-menu .mc-block")
        page.wait_for_selector("#block_form")
        assert page.locator("#id_start").input_value() != ""
        page.goto(f"{live_server.url}/admin/")
        page.click("#open-reports")
        page.wait_for_selector("#kpis")
        assert page.locator(".rp-month").count() == 12
        page.screenshot(path=str(ARTIFACTS / "reports-manager.png"), full_page=True)
        page.locator("#report-table a", has_text="owner statement").first.click()
        page.wait_for_selector("#owner-statement")
        page.screenshot(path=str(ARTIFACTS / "owner-statement.png"), full_page=True)

    with browser_page(viewport={"width": 390, "height": 844}) as page:
        _login(page, live_server, cleaner.username)
        page.wait_for_selector("#dashboard")
        assert page.locator("#dashboard article").count() == 1
        assert page.locator("#panel-turnovers .count").inner_text() == "3"
        page.screenshot(path=str(ARTIFACTS / "dashboard-cleaner.png"), full_page=True)
        page.click("#open-cleaning")
        page.wait_for_selector(".card")
        assert page.locator("a.card").count() == 3
        page.screenshot(path=str(ARTIFACTS / "cleaner-today.png"), full_page=True)
        page.locator("a.card").first.click()
        page.click("#start")
        page.wait_for_selector("text=Started.")
        assert page.locator("#task-status").inner_text() == "Started"
        page.fill("#id_notes", "Dishwasher tablets running low")
        page.click("#save-notes")
        page.wait_for_selector("text=Notes saved.")
        page.screenshot(path=str(ARTIFACTS / "cleaner-task.png"), full_page=True)
