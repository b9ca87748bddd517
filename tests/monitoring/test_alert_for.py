"""A rule's ``for_seconds`` (Prometheus' ``for:``): a condition pages operators only once it
has held that long; one that clears sooner, such as a worker restarting, pages nobody."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import time_machine
from django.test import override_settings
from django.utils import timezone

from config.celery import app as celery_app
from pms.models.monitoring import AlertIncident, AlertKind, AlertRule, IncidentStatus
from pms.monitoring import alerts
from pms.monitoring.alerts import alert_rules_evaluate, alert_rules_setup
from pms.monitoring.overview import queue_overview
from pms.monitoring.signals import BEAT_TICK_KEY, stamp_publish_time
from pms.monitoring.watchdog import watchdog_iteration
from pms.monitoring.workers import forget_workers
from pms.pipeline.broker_stats import queue_depths
from pms.pipeline.redis_client import redis_client
from pms.tasks import probe_echo
from testkit.processes import wait_until
from tests.factories import PASSWORD
from tests.monitoring.support import ops_mail, smtp_settings
from tests.support.admin_forms import change_form_data
from tests.support.servers import CeleryWorker


def _evaluate() -> dict[str, int]:
    return alert_rules_evaluate(overview=queue_overview())


def _beat_went_silent() -> None:
    redis_client().set(BEAT_TICK_KEY, time.time() - 600)


def _beat_ticks() -> None:
    stamp_publish_time(headers={"periodic_task_name": "outbox relay"})


@pytest.mark.django_db(transaction=True)
def test_a_condition_that_clears_within_its_for_pages_nobody(mailbox, webhook):
    AlertRule.objects.create(kind=AlertKind.BEAT_SILENT, threshold=60, for_seconds=60)
    with (
        override_settings(**smtp_settings(mailbox, OPS_ALERT_WEBHOOK_URL=webhook.url)),
        time_machine.travel(timezone.now(), tick=False) as clock,
    ):
        _beat_went_silent()
        assert _evaluate() == {"opened": 0, "resolved": 0, "notified": 0}
        pending = AlertIncident.objects.get()
        assert pending.status == IncidentStatus.PENDING and pending.subject == "beat"

        clock.shift(59)
        assert _evaluate() == {"opened": 0, "resolved": 0, "notified": 0}
        _beat_ticks()
        assert _evaluate() == {"opened": 0, "resolved": 0, "notified": 0}
        clock.shift(30)  # past the for: of the first sighting, beat ticking again
        assert _evaluate() == {"opened": 0, "resolved": 0, "notified": 0}
    # Dropped: no incident to see, nothing sent (no alert, so no recovery either).
    assert not AlertIncident.objects.exists()
    assert mailbox.messages == [] and webhook.calls == []


@pytest.mark.django_db(transaction=True)
def test_a_condition_held_past_its_for_opens_and_notifies_once(mailbox, webhook):
    AlertRule.objects.create(kind=AlertKind.BEAT_SILENT, threshold=60, for_seconds=60)
    # Ten evaluations, each waiting out the workers' inspect; beat's rule needs no worker.
    fast_inspect = {"QUEUE_HEALTH_INSPECT_TIMEOUT": 0.25}
    with (
        override_settings(
            **smtp_settings(mailbox, OPS_ALERT_WEBHOOK_URL=webhook.url, **fast_inspect)
        ),
        time_machine.travel(timezone.now(), tick=False) as clock,
    ):
        _beat_went_silent()
        first_seen = timezone.now()
        assert _evaluate()["opened"] == 0
        clock.shift(30)
        assert watchdog_iteration() == {"opened": 0, "resolved": 0, "notified": 0}
        assert mailbox.messages == [] and webhook.calls == []

        clock.shift(30)  # held for the whole 60 s
        assert _evaluate() == {"opened": 1, "resolved": 0, "notified": 2}  # email + webhook
        incident = AlertIncident.objects.get()
        assert incident.status == IncidentStatus.OPEN
        assert incident.firing_since == first_seen
        assert incident.opened_at == first_seen + timedelta(seconds=60)
        # What held when it opened (660 s of silence), not when first seen (600 s).
        assert incident.value is not None and incident.value > 600
        for _ in range(3):
            clock.shift(30)
            watchdog_iteration()
            _evaluate()  # beat's periodic evaluation beside the watchdog
        assert len(ops_mail(mailbox, "ALERT")) == 1
        assert "Firing since:" in str(ops_mail(mailbox, "ALERT")[0]["data"])
        assert [call["status"] for call in webhook.calls] == ["firing"]

        _beat_ticks()
        assert _evaluate()["resolved"] == 1
        _evaluate()
    assert len(ops_mail(mailbox, "ALERT")) == 1 and len(ops_mail(mailbox, "RECOVERED")) == 1
    assert [call["status"] for call in webhook.calls] == ["firing", "resolved"]
    assert AlertIncident.objects.get().status == IncidentStatus.RESOLVED


@pytest.mark.django_db(transaction=True)
def test_a_rule_with_for_zero_opens_and_notifies_at_first_sight(mailbox):
    AlertRule.objects.create(kind=AlertKind.BEAT_SILENT, threshold=60, for_seconds=0)
    _beat_went_silent()
    with override_settings(**smtp_settings(mailbox)):
        assert _evaluate()["opened"] == 1
    assert AlertIncident.objects.get().status == IncidentStatus.OPEN
    (alert,) = ops_mail(mailbox, "ALERT")
    assert "Firing since:" not in str(alert["data"])  # nothing to add to "Opened"


@pytest.mark.django_db(transaction=True)
def test_an_unmeasured_subject_neither_opens_nor_drops_a_pending_incident(mailbox):
    rule = AlertRule.objects.create(kind=AlertKind.CHANNEL_STALE, threshold=1, for_seconds=60)
    incident = AlertIncident.objects.create(
        rule=rule,
        subject="channels",
        status=IncidentStatus.PENDING,
        message="1 channel(s) stale",
        firing_since=timezone.now() - timedelta(seconds=600),
    )
    unmeasured = alerts.RuleResult(known=set(), firing={})
    assert alerts._apply_result(rule, unmeasured, now=timezone.now()) == {
        "opened": 0,
        "resolved": 0,
    }
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.PENDING
    with override_settings(**smtp_settings(mailbox)):
        assert alerts.alert_notifications_send() == 0
    assert mailbox.messages == []


@pytest.mark.django_db(transaction=True)
def test_disabling_a_rule_drops_its_pending_incident_without_a_word(mailbox):
    rule = AlertRule.objects.create(kind=AlertKind.BEAT_SILENT, threshold=60, for_seconds=60)
    _beat_went_silent()
    with override_settings(**smtp_settings(mailbox)):
        _evaluate()
        assert AlertIncident.objects.get().status == IncidentStatus.PENDING
        rule.enabled = False
        rule.save()
        assert _evaluate() == {"opened": 0, "resolved": 0, "notified": 0}
    assert not AlertIncident.objects.exists() and mailbox.messages == []


@pytest.mark.django_db
def test_a_new_rule_takes_its_for_from_the_setting_and_the_admin_edits_it(
    settings, client, superuser
):
    settings.OPS_ALERT_FOR_SECONDS = 45
    alert_rules_setup()
    rule = AlertRule.objects.get(kind=AlertKind.NO_CONSUMER)
    assert rule.for_seconds == 45

    client.login(username=superuser.username, password=PASSWORD)
    url = f"/admin/pms/alertrule/{rule.pk}/change/"
    response = client.post(url, change_form_data(client, url, for_seconds=120))
    assert response.status_code == 302, response.context["adminform"].form.errors
    rule.refresh_from_db()
    assert rule.for_seconds == 120
    response = client.post(url, change_form_data(client, url, for_seconds=-5))
    assert response.status_code == 200
    assert "for_seconds" in response.context["adminform"].form.errors
    changelist = client.get("/admin/pms/alertrule/").content.decode()
    assert "For (seconds)" in changelist and 'name="form-0-for_seconds"' in changelist

    alert_rules_setup()  # existing rules keep their edits
    assert AlertRule.objects.get(pk=rule.pk).for_seconds == 120


QUEUE = "bulk"


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_restart_of_a_few_seconds_pages_nobody(
    live_worker, worker_env, mailbox, webhook, settings
):
    """The default rules as `make run` creates them; the only worker on a queue restarts
    while work arrives for it."""
    settings.OPS_ALERT_FOR_SECONDS = 60
    # Each evaluation asks the workers and waits out the whole inspect timeout (1 s),
    # seven times here. Shorter is safe: only the bulk queue ever has work in this test,
    # and a reply missed while it has work reads as "no consumer", the condition itself.
    settings.QUEUE_HEALTH_INSPECT_TIMEOUT = 0.25
    alert_rules_setup()
    _beat_ticks()
    bulk_worker = CeleryWorker(queues=[QUEUE], env=worker_env, concurrency=1, name="bulk")
    # The session worker leaves the queue to the worker that restarts.
    celery_app.control.cancel_consumer(QUEUE, destination=[live_worker.name], reply=True)
    try:
        bulk_worker.start(celery_app)
        with override_settings(**smtp_settings(mailbox, OPS_ALERT_WEBHOOK_URL=webhook.url)):
            bulk_worker.stop()
            for index in range(3):
                probe_echo.apply_async(kwargs={"token": f"r{index}"}, queue=QUEUE)
            forget_workers()
            for _ in range(3):
                watchdog_iteration()
                alert_rules_evaluate()
                time.sleep(0.5)
            # The condition was seen: it waits out its for: instead of paging.
            pending = AlertIncident.objects.get(rule__kind=AlertKind.NO_CONSUMER)
            assert pending.status == IncidentStatus.PENDING and pending.subject == QUEUE

            bulk_worker.start(celery_app)
            wait_until(
                lambda: queue_depths(queues=[QUEUE])[0].depth == 0, 30, what="the queue to drain"
            )
            forget_workers()
            watchdog_iteration()
            alert_rules_evaluate()
        assert not AlertIncident.objects.exists()
        assert mailbox.messages == [] and webhook.calls == []
    finally:
        bulk_worker.stop()
        celery_app.control.add_consumer(QUEUE, destination=[live_worker.name], reply=True)
        forget_workers()


@pytest.mark.django_db
def test_a_pending_incident_seen_again_after_a_long_gap_waits_out_its_for_again():
    # The subject went unmeasured (a paused channel, an inspect that kept timing out):
    # whether the condition held in between is unknown, so it must not page at once.
    rule = AlertRule.objects.create(kind=AlertKind.CHANNEL_STALE, threshold=1, for_seconds=60)
    firing = alerts.RuleResult(
        known={"channels"}, firing={"channels": alerts.Firing(1, "1 channel(s) stale")}
    )
    unmeasured = alerts.RuleResult(known=set(), firing={})
    start = timezone.now()
    assert alerts._apply_result(rule, firing, now=start) == {"opened": 0, "resolved": 0}
    for minutes in (1, 5, 30):  # nothing measured for half an hour
        alerts._apply_result(rule, unmeasured, now=start + timedelta(minutes=minutes))
    back = start + timedelta(days=2)
    assert alerts._apply_result(rule, firing, now=back) == {"opened": 0, "resolved": 0}
    incident = AlertIncident.objects.get()
    assert incident.status == IncidentStatus.PENDING and incident.firing_since == back
    assert alerts._apply_result(rule, firing, now=back + timedelta(seconds=30))["opened"] == 0
    assert alerts._apply_result(rule, firing, now=back + timedelta(seconds=61))["opened"] == 1
