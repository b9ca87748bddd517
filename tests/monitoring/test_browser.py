"""Real Chromium: an operator logs into the admin and looks; then logs into Flower."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

from pms.monitoring.sampling import queue_sample_take
from testkit.processes import die_with_parent, free_port, wait_until
from tests.factories import PASSWORD
from tests.monitoring.browser import browser_page
from tests.support.servers import ARTIFACTS

pytestmark = pytest.mark.needs("browser")


def _login(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_admin_queue_health_page_and_a_property_calendar_in_chromium(
    live_server, live_worker, superuser, alice
):
    ARTIFACTS.mkdir(exist_ok=True)
    for _ in range(3):
        queue_sample_take()  # the charts need points
    with browser_page() as page:
        _login(page, live_server, superuser.username)
        page.goto(f"{live_server.url}/admin/pms/queuesample/")
        page.wait_for_selector("#qh-queues")
        assert page.locator("#queue-bookings .qh-consumers").inner_text().strip() == "1"
        assert page.locator("#qh-worker-list").inner_text().count("@") >= 1
        assert page.locator("svg.queue-chart").count() == 2
        assert page.locator("svg.queue-chart polyline").count() >= 1
        page.screenshot(path=str(ARTIFACTS / "queue-health.png"), full_page=True)

        calendar = reverse("admin:bookings_property_calendar", args=[alice.property.pk])
        response = page.goto(f"{live_server.url}{calendar}")
        assert response is not None and response.status == 200
        page.wait_for_selector("#content")
        assert alice.property.name in page.content()
        page.screenshot(path=str(ARTIFACTS / "property-calendar.png"), full_page=True)
    assert (ARTIFACTS / "queue-health.png").stat().st_size > 10_000


@pytest.mark.worker
def test_flower_behind_basic_auth_shows_the_workers(live_worker, worker_env, tmp_path: Path):
    port = free_port()
    log = ARTIFACTS / "flower.log"
    with log.open("wb") as output:
        flower = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "flower",
                "--address=127.0.0.1",
                f"--port={port}",
                "--basic-auth=ops:flower-test-pass",
                "--persistent=True",
                f"--db={tmp_path / 'flower.db'}",
            ],
            env={**os.environ, **worker_env},
            cwd=Path(__file__).resolve().parents[2],
            preexec_fn=die_with_parent,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        import urllib.error
        import urllib.request

        def answering() -> bool:
            assert flower.poll() is None, f"flower exited; see {log}"
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
            except urllib.error.HTTPError as error:
                return error.code == 401  # up, and asking for credentials
            except OSError:
                return False
            return False

        # Up, and refusing a request without credentials (401), before the browser logs in.
        wait_until(answering, 30, interval=0.3, what="flower to listen")
        with browser_page(
            http_credentials={"username": "ops", "password": "flower-test-pass"}
        ) as page:
            page.goto(f"http://127.0.0.1:{port}/workers")
            page.wait_for_selector(f"text={live_worker.name}", timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "flower-workers.png"), full_page=True)
    finally:
        flower.terminate()
        try:
            flower.wait(10)
        except subprocess.TimeoutExpired:
            flower.kill()
            flower.wait(5)
