"""OUTBOX_PUBLISH=notify: the emitting transaction only NOTIFYs; the publisher process sends.

A real ``manage.py outbox_publisher`` process, the session worker and PostgreSQL's
LISTEN/NOTIFY. What must hold: committed events are delivered without any publish
from the emitting process; a rolled-back one wakes nobody; and killing the publisher
(``kill -9``, also between its claim and its send) loses nothing: the beat relay
sends what it left, and a restarted publisher sends what was committed meanwhile.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.db import connection, transaction
from django.utils import timezone

from config.celery import app as celery_app
from pms.choices import DeliveryStatus
from pms.models import EventDelivery
from pms.pipeline.publisher import _claim_sql
from pms.pipeline.publishing import CHANNEL
from pms.pipeline.relay import relay_due_deliveries
from testkit.processes import die_with_parent, wait_until
from tests.support.pipeline import assert_pipeline_settled, effects, emit_probe
from tests.support.servers import ARTIFACTS

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]


class Publisher:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.log = ARTIFACTS / "outbox-publisher.log"

    def start(self) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.process = subprocess.Popen(
            [
                *(sys.executable, "manage.py", "outbox_publisher", "--poll", "0.5"),
                *("--include", "tests.support.fault_handlers"),  # the workers' test handlers
            ],
            cwd=ROOT,
            env=self.env,
            preexec_fn=die_with_parent,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.terminate()
        return self.process.wait(20)


@pytest.fixture
def notify_mode(settings: Any) -> None:
    settings.OUTBOX_PUBLISH = "notify"


@pytest.fixture
def publisher(worker_env: dict[str, str], notify_mode: None) -> Iterator[Publisher]:
    env = {**os.environ, **worker_env, "OUTBOX_PUBLISH": "notify", "CELERY_SKIP_CHECKS": "1"}
    process = Publisher(env)
    yield process
    process.stop()


def _unpublished() -> int:
    return EventDelivery.objects.filter(
        status=DeliveryStatus.PENDING, last_published_at__isnull=True
    ).count()


def _relay_everything_due() -> None:
    """What beat's relay does once the deadline has passed (brought forward here)."""
    EventDelivery.objects.filter(status=DeliveryStatus.PENDING).update(due_at=timezone.now())
    relay_due_deliveries()


def test_committed_events_reach_the_handlers_through_the_publisher(live_worker, alice, publisher):
    publisher.start()
    events = [emit_probe(alice.tenant, aggregate_id=f"notify-{index}") for index in range(20)]
    assert_pipeline_settled(timeout=60)
    assert all(effects(event) == 1 for event in events)
    # Sent once each, by the publisher: the relay would have counted a re-send.
    sent = EventDelivery.objects.filter(event__in=events)
    assert sent.count() == 40
    assert not sent.filter(last_published_at__isnull=True).exists()
    assert not sent.exclude(publish_count=0).exists()
    assert publisher.stop() == 0  # SIGTERM: a clean stop


def test_the_emitting_process_publishes_nothing_itself(live_worker, alice, notify_mode):
    """No publisher running: the deliveries wait, unpublished, with no message anywhere."""
    emit_probe(alice.tenant, aggregate_id="waiting")
    assert _unpublished() == 2
    time.sleep(1.0)  # a worker would have had time to apply a message
    assert _unpublished() == 2


def test_a_notification_is_sent_on_commit_only(alice, notify_mode):
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params, autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANNEL}")
        with pytest.raises(RuntimeError), transaction.atomic():
            emit_probe(alice.tenant, aggregate_id="rolled-back")
            raise RuntimeError("the service fails after emitting")
        assert list(listener.notifies(timeout=0.5, stop_after=1)) == []
        emit_probe(alice.tenant, aggregate_id="committed")
        assert [n.channel for n in listener.notifies(timeout=5, stop_after=1)] == [CHANNEL]


def test_killing_the_publisher_loses_nothing(live_worker, alice, publisher):
    publisher.start()
    first = [emit_probe(alice.tenant, aggregate_id=f"before-{index}") for index in range(10)]
    assert_pipeline_settled(timeout=60)
    publisher.kill()

    # Committed while it is dead: nothing sends them until the relay or a new publisher.
    while_dead = [emit_probe(alice.tenant, aggregate_id=f"dead-{index}") for index in range(10)]
    assert _unpublished() == 20
    # A publisher killed between its claim (committed) and its send: marked published,
    # never sent. Only the relay can find these.
    with connection.cursor() as cursor:
        cursor.execute(_claim_sql(), [DeliveryStatus.PENDING, 6, timezone.now()])
        assert len(cursor.fetchall()) == 6
    assert _unpublished() == 14

    publisher.start()  # the supervisor restarts it: it sends what nobody published
    wait_until(lambda: _unpublished() == 0, 30, what="the restarted publisher to drain")
    stranded = EventDelivery.objects.filter(status=DeliveryStatus.PENDING)
    wait_until(lambda: stranded.count() == 6, 30, what="all but the claimed-unsent to apply")
    _relay_everything_due()  # the safety net: beat's relay, past the deadline
    report = assert_pipeline_settled(timeout=60)
    assert report.failed_without_review == 0
    assert all(effects(event) == 1 for event in first + while_dead)
    assert celery_app.control.ping(timeout=1)  # the worker lived through it all


def test_the_publisher_refuses_to_run_when_emitters_publish_after_commit(worker_env):
    env = {**os.environ, **worker_env, "OUTBOX_PUBLISH": "commit", "CELERY_SKIP_CHECKS": "1"}
    result = subprocess.run(
        [sys.executable, "manage.py", "outbox_publisher"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "OUTBOX_PUBLISH is 'commit'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
