"""Housekeeping that did nothing logs at DEBUG; a pass that did something still says so at
INFO (pms.pipeline.log_filters, installed on Celery's loggers through Django's LOGGING)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from celery.beat import ScheduleEntry, Scheduler
from celery.schedules import schedule
from django.utils import timezone

from config.celery import app as celery_app
from pms.models import EventDelivery, QueueSample
from pms.pipeline.log_filters import did_nothing
from pms.pipeline.publishing import broker_breaker
from pms.tasks import monitoring_sample_queues, probe_echo, relay_outbox
from testkit.processes import wait_until
from tests.support.pipeline import assert_pipeline_settled, emit_probe
from tests.support.servers import log_count


def _lines_about(logfile, task_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [line for line in logfile.read_text(errors="replace").splitlines() if task_id in line]


def _marker_logged(logfile) -> str:  # type: ignore[no-untyped-def]
    """A task sent after the one under test finished: once its "succeeded" line is
    written, the lines of the one under test would have been too."""
    marker = probe_echo.apply_async(kwargs={"token": "marker"}, queue="default")
    marker.get(timeout=30)
    wait_until(lambda: log_count(logfile, f"[{marker.id}] succeeded"), 10, what="marker line")
    return marker.id


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_an_idle_relay_pass_writes_no_info_line_and_a_busy_one_says_what_it_did(live_worker, alice):
    logfile = live_worker.logfile
    idle = relay_outbox.apply_async(ignore_result=False)
    assert idle.get(timeout=30) == 0
    marker = _marker_logged(logfile)
    assert _lines_about(logfile, idle.id) == []  # neither "received" nor "succeeded ...: 0"
    assert log_count(logfile, f"[{marker}] received") == 1  # other tasks keep their lines

    broker_breaker.trip()  # the commit-time publish is "lost": the relay has work
    try:
        event = emit_probe(alice.tenant, aggregate_id="quiet-logs")
    finally:
        broker_breaker.reset()
    EventDelivery.objects.filter(event=event).update(due_at=timezone.now() - timedelta(minutes=5))
    busy = relay_outbox.apply_async(ignore_result=False)
    assert busy.get(timeout=30) == 2
    wait_until(lambda: log_count(logfile, f"[{busy.id}] succeeded"), 10, what="busy pass line")
    (line,) = _lines_about(logfile, busy.id)  # its "received" line is DEBUG
    assert ": INFO/" in line and line.endswith(": 2"), line
    assert_pipeline_settled()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_routine_queue_sample_writes_no_info_line(live_worker):
    sample = monitoring_sample_queues.apply_async(ignore_result=False)
    assert QueueSample.objects.filter(pk=sample.get(timeout=30)).exists()  # it did its work
    _marker_logged(live_worker.logfile)
    assert _lines_about(live_worker.logfile, sample.id) == []


def _entry(name: str, task: str) -> ScheduleEntry:
    return ScheduleEntry(
        name=name, task=task, schedule=schedule(timedelta(seconds=5)), app=celery_app
    )


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_beat_sends_housekeeping_at_debug_and_other_tasks_at_info(live_worker, caplog):
    """Real records from Celery's beat scheduler (the tasks really go to the broker)."""
    scheduler = Scheduler(app=celery_app, lazy=True)

    def beat_lines() -> list[tuple[str, str]]:
        return [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "celery.beat"]

    with caplog.at_level(logging.INFO):
        scheduler.apply_entry(_entry("outbox relay", "pms.tasks.relay_outbox"))
        scheduler.apply_entry(_entry("fair dispatch", "pms.tasks.fair_dispatch"))
        scheduler.apply_entry(_entry("probe", "pms.tasks.probe_echo"))
    assert beat_lines() == [("INFO", "Scheduler: Sending due task probe (pms.tasks.probe_echo)")]

    caplog.clear()
    with caplog.at_level(logging.DEBUG):  # LOG_LEVEL=DEBUG shows them again, as DEBUG
        scheduler.apply_entry(_entry("outbox relay", "pms.tasks.relay_outbox"))
    assert beat_lines()[0] == (
        "DEBUG",
        "Scheduler: Sending due task outbox relay (pms.tasks.relay_outbox)",
    )


def test_a_result_says_nothing_was_done_only_when_every_count_is_zero():
    assert did_nothing(0) and did_nothing(None) and did_nothing({"channels": 0, "webhooks": 0})
    assert did_nothing({"opened": 0, "resolved": 0, "notified": 0}) and did_nothing([])
    assert not did_nothing(3) and not did_nothing({"channels": 0, "webhooks": 1})
    assert not did_nothing("sent") and not did_nothing(True)
