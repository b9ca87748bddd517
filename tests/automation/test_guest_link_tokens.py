"""Guest links: tokens expire after check-out, re-sent links replace the oldest, the
manager revokes them in the admin, and no token reaches a log line."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from automation.models import OutboundMessage
from automation.services import guest_link_email, outbound_message_send
from bookings.models import GuestAccessToken
from bookings.services import guest_token_issue
from testkit.processes import die_with_parent, free_port, wait_until
from tests.automation.conftest import book

ROOT = Path(__file__).resolve().parents[2]


def _opens(booking, token) -> int:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api.get(f"/api/v1/bookings/{booking.reference}/").status_code


def _emailed_token(mail: dict[str, Any]) -> str:
    found = re.search(r"\?token=([A-Za-z0-9_-]+)", mail["data"])
    assert found is not None, "no link in the email"
    return found.group(1)


@pytest.fixture
def stay(alice, future):
    return book(alice, future, future + timedelta(days=3))


@pytest.mark.django_db
def test_a_token_expires_the_configured_days_after_check_out(settings, stay):
    settings.GUEST_TOKEN_DAYS_AFTER_CHECKOUT = 30
    token = guest_token_issue(booking=stay)
    last_day = timezone.make_aware(
        datetime.combine(stay.check_out + timedelta(days=30), datetime.min.time())
    ) + timedelta(hours=12)
    with time_machine.travel(last_day, tick=False):
        assert _opens(stay, token) == 200
    with time_machine.travel(last_day + timedelta(days=1), tick=False):
        assert _opens(stay, token) == 401


@pytest.mark.django_db
def test_re_sent_links_keep_a_bounded_set_of_live_tokens_the_newest_working(
    settings, alice, stay, smtp_settings
):
    settings.GUEST_TOKENS_LIVE_PER_BOOKING = 3
    stay.guest.email = "ana@example.test"
    stay.guest.save(update_fields=["email"])
    before = len(smtp_settings.messages)
    for _ in range(6):
        assert guest_link_email(booking=stay)  # what the admin's "new private link" calls
    for message in OutboundMessage.objects.filter(booking=stay, kind="guest_access"):
        assert outbound_message_send(message_id=message.pk) == "sent"
    mails = smtp_settings.messages[before:]
    tokens = [_emailed_token(m) for m in mails]
    assert len(set(tokens)) == 6
    live = GuestAccessToken.objects.filter(booking=stay, revoked_at__isnull=True)
    assert live.count() == 3
    statuses = [_opens(stay, token) for token in tokens]
    assert statuses == [401, 401, 401, 200, 200, 200]


@pytest.mark.django_db
def test_the_manager_revokes_the_links_in_the_admin_and_the_other_tenant_cannot(
    client, alice, bob, stay
):
    token = guest_token_issue(booking=stay)
    changelist = "/admin/bookings/booking/"
    action = {"action": "revoke_guest_links", "_selected_action": [stay.pk]}

    client.force_login(bob.manager)
    client.post(changelist, action)
    assert _opens(stay, token) == 200  # bob's queryset has no alice booking to act on

    client.force_login(alice.manager)
    response = client.post(changelist, action, follow=True)
    assert response.status_code == 200 and b"Revoked 1 link(s)." in response.content
    assert _opens(stay, token) == 401


# --- Logs ----------------------------------------------------------------------------------


def _configured_output(logger_name: str, message: str, *args: object) -> list[str]:
    """What the configured (non-pytest) handlers would write for this record."""
    logger = logging.getLogger(logger_name)
    record = logger.makeRecord(logger_name, logging.WARNING, __file__, 0, message, args, None)
    lines = []
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if type(handler).__module__.startswith("_pytest"):
                continue
            if handler.filter(record):
                lines.append(handler.format(record))
        current = current.parent if current.propagate else None
    return lines


@pytest.mark.parametrize("logger_name", ["django.server", "django.request", "bookings.api"])
def test_django_log_lines_never_carry_a_guest_token(logger_name):
    lines = _configured_output(
        logger_name,
        '"%s" %s',
        "GET /api/v1/bookings/AB12CD/?token=s3cret-Guest_Token HTTP/1.1",
        200,
    )
    assert lines, "no configured handler"
    for line in lines:
        assert "s3cret-Guest_Token" not in line
        assert "/api/v1/bookings/AB12CD/?token=[redacted]" in line


def test_gunicorns_access_log_never_carries_a_guest_token(tmp_path):
    access_log = tmp_path / "access.log"
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--access-logfile",
            str(access_log),
            "--access-logformat",
            '%(h)s "%(r)s" %(s)s q=%(q)s "%(f)s" auth=%({authorization}i)s',
            "--logger-class",
            "config.gunicorn_logging.TokenRedactingLogger",
        ],
        cwd=ROOT,
        env={**os.environ, "CELERY_SKIP_CHECKS": "1"},
        preexec_fn=die_with_parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:

        def answered() -> bool:
            if process.poll() is not None:
                assert process.stderr is not None
                raise RuntimeError(process.stderr.read().decode()[-2000:])
            try:
                requests.get(f"http://127.0.0.1:{port}/no-such-page/", timeout=15)
                return True
            except requests.RequestException:
                return False

        wait_until(answered, 60, interval=0.3, what="gunicorn")
        requests.get(
            f"http://127.0.0.1:{port}/guest/AB12CD/?lang=en&token=s3cret-Guest_Token",
            headers={
                "Referer": "https://pms.example/guest/AB12CD/?token=s3cret-Referer",
                "Authorization": "Bearer s3cret-Bearer",
            },
            timeout=10,
        )
        wait_until(lambda: "AB12CD" in access_log.read_text(), 10, what="the access log line")
        time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(20)
    text = access_log.read_text()
    assert "s3cret" not in text, text
    assert "/guest/AB12CD/?lang=en&token=[redacted]" in text
    assert "auth=[redacted]" in text


def test_celery_workers_and_beat_log_no_guest_token(tmp_path):
    # Celery replaces the root logger's handlers in its processes (Django's redacting
    # console included); its own logging set-up, as a worker or beat runs it, must redact.
    logfile = tmp_path / "celery.log"
    script = (
        "import logging, django; django.setup()\n"
        "from config.celery import app\n"
        f"app.log.setup(loglevel='INFO', logfile={str(logfile)!r}, colorize=False)\n"
        "logging.getLogger('pms.anything').info('link /api/v1/bookings/AB12CD/?token=s3cr3t-tok')\n"
        "logging.getLogger('celery.task').info('Authorization: Bearer s3cr3t-bearer')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    written = logfile.read_text()
    assert "?token=[redacted]" in written, written
    assert "s3cr3t-tok" not in written and "s3cr3t-bearer" not in written
