"""A queue fills while no worker consumes it: the page, /metrics and an alert say so;
once a worker drains it, the incident resolves and operators get one recovery message."""

from __future__ import annotations

import re

import pytest
from django.test import override_settings

from config.celery import app as celery_app
from pms.models.monitoring import AlertIncident, AlertKind, AlertRule
from pms.monitoring.alerts import alert_rules_evaluate
from pms.monitoring.task_stats import TaskStats, read_task_stats
from pms.monitoring.workers import forget_workers
from pms.pipeline.broker_stats import queue_depths
from pms.tasks import probe_echo
from testkit.processes import wait_until
from tests.factories import PASSWORD
from tests.support.pipeline import assert_pipeline_settled

QUEUE = "bulk"
PROBES = 7
PAGE = "/admin/pms/queuesample/"


def _ops_mail(mailbox, state: str) -> list[dict]:
    return [m for m in mailbox.messages if f"[PMS ops] {state}" in str(m["data"])]


def _metric(body: str, name: str, queue: str) -> float | None:
    match = re.search(rf'^{name}\{{queue="{queue}"\}} (\S+)$', body, re.MULTILINE)
    return float(match.group(1)) if match else None


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_queue_without_consumer_is_reported_then_recovers(
    live_worker, client, superuser, mailbox, webhook
):
    AlertRule.objects.create(kind=AlertKind.NO_CONSUMER, threshold=1, for_seconds=0)
    AlertRule.objects.create(
        kind=AlertKind.QUEUE_DEPTH, queue=QUEUE, threshold=PROBES - 1, for_seconds=0
    )
    smtp = {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": mailbox.port,
        "EMAIL_USE_TLS": False,
        "EMAIL_HOST_USER": "",
        "EMAIL_HOST_PASSWORD": "",
        "OPS_ALERT_EMAILS": ["oncall@example.test"],
        "OPS_ALERT_WEBHOOK_URL": webhook.url,
    }
    celery_app.control.cancel_consumer(QUEUE, destination=[live_worker.name], reply=True)
    try:
        for index in range(PROBES):
            probe_echo.apply_async(kwargs={"token": f"t{index}"}, queue=QUEUE)
        forget_workers()

        # The page: depth, an oldest age, no consumer.
        client.login(username=superuser.username, password=PASSWORD)
        page = client.get(PAGE)
        assert page.status_code == 200
        row = page.context["overview"].queues[
            [q.name for q in page.context["overview"].queues].index(QUEUE)
        ]
        assert row.depth == PROBES and row.consumers == 0 and row.has_work_and_no_consumer
        assert row.oldest_age_seconds is not None and row.oldest_age_seconds >= 0
        html = page.content.decode()
        assert f'id="queue-{QUEUE}"' in html and "no consumer" in html

        # /metrics: the gauges.
        metrics = client.get("/metrics").content.decode()
        assert _metric(metrics, "pms_queue_depth", QUEUE) == PROBES
        assert _metric(metrics, "pms_queue_consumers", QUEUE) == 0
        assert _metric(metrics, "pms_queue_oldest_message_age_seconds", QUEUE) is not None
        assert _metric(metrics, "pms_queue_consumers", "bookings") == 1

        # The alert: one email and one webhook per incident, however often rules run.
        with override_settings(**smtp):
            alert_rules_evaluate()
            alert_rules_evaluate()
        incidents = AlertIncident.objects.filter(subject=QUEUE, status="open")
        assert sorted(i.rule.kind for i in incidents) == ["no_consumer", "queue_depth"]
        alerts = _ops_mail(mailbox, "ALERT")
        assert len(alerts) == 2, [m["data"][:200] for m in mailbox.messages]
        assert all(m["to"] == ["oncall@example.test"] for m in alerts)
        assert any("no worker consumes it" in str(m["data"]) for m in alerts)
        assert sorted((c["status"], c["rule"]) for c in webhook.calls) == [
            ("firing", "no_consumer"),
            ("firing", "queue_depth"),
        ]
        # The health endpoint names the queue nobody consumes.
        health = client.get("/health/?format=json")
        assert health.status_code == 500
        assert f"No worker for Celery task queue {QUEUE}" in health.content.decode()
    finally:
        celery_app.control.add_consumer(QUEUE, destination=[live_worker.name], reply=True)
        forget_workers()

    wait_until(lambda: queue_depths(queues=[QUEUE])[0].depth == 0, 30, what="the queue to drain")
    with override_settings(**smtp):
        alert_rules_evaluate()
        alert_rules_evaluate()
    assert not AlertIncident.objects.filter(status="open").exists()
    recovered = _ops_mail(mailbox, "RECOVERED")
    assert len(recovered) == 2
    assert len(_ops_mail(mailbox, "ALERT")) == 2  # nothing re-sent
    assert sorted(c["status"] for c in webhook.calls) == [
        "firing",
        "firing",
        "resolved",
        "resolved",
    ]
    assert all(i.recovered_notified_at for i in AlertIncident.objects.all())

    # Workers recorded what they ran: throughput and runtimes of the drained queue.
    def drained_stats() -> TaskStats | None:
        stats = read_task_stats()
        rates = stats.last_5_minutes.get(QUEUE)
        return stats if rates and rates.processed >= PROBES else None

    stats = wait_until(drained_stats, 10, what="task stats")
    assert stats.last_5_minutes[QUEUE].failed == 0
    assert any(r.task_name == "pms.tasks.probe_echo" and r.p95 for r in stats.runtimes)
    page = client.get(PAGE)
    assert "pms.tasks.probe_echo" in page.content.decode()

    health = client.get("/health/?format=json")
    assert health.status_code == 200, health.content
    assert_pipeline_settled()
