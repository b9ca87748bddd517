"""The ops watchdog evaluates the alert rules in its own process, so "beat silent"
fires when beat is down and no alert waits for a worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import override_settings

from pms.models.monitoring import AlertIncident, AlertKind, AlertRule, IncidentStatus
from pms.monitoring.alerts import alert_rules_evaluate
from pms.monitoring.signals import BEAT_TICK_KEY, stamp_publish_time
from pms.monitoring.watchdog import watchdog_iteration
from pms.pipeline.redis_client import redis_client
from testkit.processes import wait_until
from tests.monitoring.support import ops_mail, smtp_settings

ROOT = Path(__file__).resolve().parents[2]
# Every evaluation waits out the whole worker inspect (1 s by default); these tests have
# only the beat-silent rule, which asks no worker, so a short wait changes nothing.
FAST_INSPECT = {"QUEUE_HEALTH_INSPECT_TIMEOUT": "0.25"}


def _beat_went_silent(seconds: float = 600) -> None:
    redis_client().set(BEAT_TICK_KEY, time.time() - seconds)


def _beat_ticks() -> None:
    stamp_publish_time(headers={"periodic_task_name": "outbox relay"})


def _iteration() -> dict[str, int]:
    result = watchdog_iteration()
    assert result is not None, "the watchdog's evaluation failed (see the log)"
    return result


@pytest.mark.django_db(transaction=True)
def test_one_watchdog_iteration_opens_beat_silent_and_a_fresh_tick_resolves_it(mailbox):
    AlertRule.objects.create(kind=AlertKind.BEAT_SILENT, threshold=60, for_seconds=0)
    _beat_went_silent()
    with override_settings(**smtp_settings(mailbox, QUEUE_HEALTH_INSPECT_TIMEOUT=0.25)):
        assert _iteration()["opened"] == 1
        alert_rules_evaluate()  # beat's periodic evaluation beside it: no second message
        assert _iteration()["opened"] == 0
        assert len(ops_mail(mailbox, "ALERT")) == 1
        assert ops_mail(mailbox, "ALERT")[0]["to"] == ["oncall@example.test"]
        incident = AlertIncident.objects.get()
        assert incident.subject == "beat" and incident.status == IncidentStatus.OPEN

        _beat_ticks()
        assert _iteration()["resolved"] == 1
        assert watchdog_iteration() == {"opened": 0, "resolved": 0, "notified": 0}
        alert_rules_evaluate()
    assert len(ops_mail(mailbox, "ALERT")) == 1
    assert len(ops_mail(mailbox, "RECOVERED")) == 1
    assert AlertIncident.objects.get().status == IncidentStatus.RESOLVED


def _watchdog(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "manage.py", "ops_watchdog", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.django_db(transaction=True)
def test_the_watchdog_command_alerts_without_beat_or_workers_and_stops_on_sigterm(
    worker_env, mailbox
):
    AlertRule.objects.create(kind=AlertKind.BEAT_SILENT, threshold=60, for_seconds=0)
    _beat_went_silent()
    env = {
        **os.environ,
        **worker_env,  # the test database, the private broker, the SMTP sink
        "REDIS_URL": django_settings.REDIS_URL,
        "OPS_ALERT_EMAILS": "oncall@example.test",
        "OPS_WATCHDOG_INTERVAL": "0.5",
        "OPS_ALERT_STARTUP_GRACE_SECONDS": "0",
        **FAST_INSPECT,
    }
    process = _watchdog(env, "--iterations", "2")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "stopped after 2 evaluation(s)" in out
    assert len(ops_mail(mailbox, "ALERT")) == 1
    assert AlertIncident.objects.get().status == IncidentStatus.OPEN

    _beat_ticks()
    process = _watchdog(env)  # until told to stop
    try:
        wait_until(lambda: ops_mail(mailbox, "RECOVERED"), 30, what="recovery email")
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "ops watchdog: stopped after" in out
    assert len(ops_mail(mailbox, "ALERT")) == 1 and len(ops_mail(mailbox, "RECOVERED")) == 1
    assert AlertIncident.objects.get().status == IncidentStatus.RESOLVED


def test_a_bad_interval_is_one_readable_error_line(worker_env):
    env = {**os.environ, **worker_env, "OPS_WATCHDOG_INTERVAL": "thirty"}
    process = _watchdog(env)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert err.strip().splitlines() == [
        "CommandError: OPS_WATCHDOG_INTERVAL must be a number of seconds, got 'thirty'"
    ]


def test_the_procfile_runs_the_watchdog_as_its_own_process():
    lines = dict(
        line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line
    )
    assert lines["watchdog"].strip() == "python manage.py ops_watchdog"


def _watchdog_env(worker_env: dict[str, str], **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        **worker_env,
        "REDIS_URL": django_settings.REDIS_URL,
        "OPS_ALERT_EMAILS": "oncall@example.test",
        "OPS_WATCHDOG_INTERVAL": "0.5",
        **FAST_INSPECT,
        **extra,
    }


@pytest.mark.django_db(transaction=True)
def test_the_watchdog_evaluates_nothing_during_its_start_up_grace(worker_env, mailbox):
    AlertRule.objects.create(kind=AlertKind.BEAT_SILENT, threshold=60, for_seconds=0)
    _beat_went_silent()
    env = _watchdog_env(worker_env, OPS_ALERT_STARTUP_GRACE_SECONDS="600")
    process = _watchdog(env)
    try:
        assert process.stderr is not None
        line = process.stderr.readline()  # blocks until the grace begins (or the process ends)
        assert "ops watchdog: start-up grace, first evaluation in 600s" in line, line
        assert " INFO " in line
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "stopped after 0 evaluation(s)" in out  # SIGTERM ends the grace at once
    assert not AlertIncident.objects.exists() and mailbox.messages == []


@pytest.mark.django_db(transaction=True)
def test_the_watchdog_first_evaluates_once_its_start_up_grace_is_over(worker_env, mailbox):
    AlertRule.objects.create(kind=AlertKind.BEAT_SILENT, threshold=60, for_seconds=0)
    _beat_went_silent()
    env = _watchdog_env(worker_env, OPS_ALERT_STARTUP_GRACE_SECONDS="3")
    started = time.time()
    process = _watchdog(env, "--iterations", "1")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "stopped after 1 evaluation(s)" in out
    assert err.count("start-up grace") == 1
    incident = AlertIncident.objects.get()
    assert incident.opened_at.timestamp() >= started + 3
    assert len(ops_mail(mailbox, "ALERT")) == 1


def test_a_bad_start_up_grace_is_one_readable_error_line(worker_env):
    env = {**os.environ, **worker_env, "OPS_ALERT_STARTUP_GRACE_SECONDS": "-1"}
    process = _watchdog(env)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert err.strip().splitlines() == [
        "CommandError: OPS_ALERT_STARTUP_GRACE_SECONDS must be 0 or more, got '-1'"
    ]
