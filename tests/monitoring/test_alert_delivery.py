"""How incidents reach operators: email and webhook each once per incident and once per
recovery, whatever the other channel does; a disabled rule closes its incidents silently."""

from __future__ import annotations

import time

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings

from pms.models.monitoring import AlertIncident, AlertKind, AlertRule, IncidentStatus
from pms.monitoring.alerts import alert_rules_evaluate
from pms.monitoring.overview import queue_overview
from pms.monitoring.signals import BEAT_TICK_KEY, stamp_publish_time
from pms.pipeline.redis_client import redis_client
from tests.monitoring.support import ops_mail, smtp_settings


def _evaluate() -> dict[str, int]:
    # The worker list is cached a few seconds: one inspect round trip for the test.
    return alert_rules_evaluate(overview=queue_overview())


@pytest.mark.django_db(transaction=True)
def test_a_failing_webhook_is_retried_alone_and_the_email_goes_out_once(mailbox, webhook):
    AlertRule.objects.create(kind=AlertKind.BEAT_SILENT, threshold=60, for_seconds=0)
    redis_client().set(BEAT_TICK_KEY, time.time() - 600)
    webhook.failing = True
    with override_settings(**smtp_settings(mailbox, OPS_ALERT_WEBHOOK_URL=webhook.url)):
        for _ in range(3):
            _evaluate()
        assert len(ops_mail(mailbox, "ALERT")) == 1
        assert webhook.refused == 3 and webhook.calls == []
        incident = AlertIncident.objects.get()
        assert incident.notified_at and incident.webhook_notified_at is None

        webhook.failing = False
        _evaluate()
        _evaluate()
        assert [call["status"] for call in webhook.calls] == ["firing"]
        assert len(ops_mail(mailbox, "ALERT")) == 1

        # Recovery: the webhook fails once more; the email is not repeated meanwhile.
        stamp_publish_time(headers={"periodic_task_name": "outbox relay"})
        webhook.failing = True
        _evaluate()
        _evaluate()
        assert len(ops_mail(mailbox, "RECOVERED")) == 1
        webhook.failing = False
        _evaluate()
        _evaluate()
    assert [call["status"] for call in webhook.calls] == ["firing", "resolved"]
    assert len(ops_mail(mailbox, "ALERT")) == 1 and len(ops_mail(mailbox, "RECOVERED")) == 1
    incident.refresh_from_db()
    assert incident.recovered_notified_at and incident.webhook_recovered_at


@pytest.mark.django_db(transaction=True)
def test_disabling_a_rule_closes_its_incidents_silently(settings, mailoutbox, webhook):
    settings.OPS_ALERT_EMAILS = ["oncall@example.test"]
    settings.OPS_ALERT_WEBHOOK_URL = webhook.url
    rule = AlertRule.objects.create(kind=AlertKind.BEAT_SILENT, threshold=60, for_seconds=0)
    redis_client().set(BEAT_TICK_KEY, time.time() - 600)
    assert _evaluate()["opened"] == 1
    assert len(mailoutbox) == 1 and len(webhook.calls) == 1

    rule.enabled = False
    rule.save()
    assert _evaluate()["resolved"] == 1
    _evaluate()
    incident = AlertIncident.objects.get()
    assert incident.status == IncidentStatus.RESOLVED and incident.resolved_at
    assert incident.resolution_note == "rule disabled"
    assert incident.recovered_notified_at is None
    assert [m.subject.split()[2] for m in mailoutbox] == ["ALERT"]
    assert [call["status"] for call in webhook.calls] == ["firing"]


@pytest.mark.django_db
def test_a_rule_can_only_name_a_declared_queue():
    AlertRule(kind=AlertKind.QUEUE_DEPTH, queue="bulk", threshold=5).full_clean()
    AlertRule(kind=AlertKind.QUEUE_DEPTH, queue="", threshold=5).full_clean()
    with pytest.raises(ValidationError) as error:
        AlertRule(kind=AlertKind.QUEUE_DEPTH, queue="bulkk", threshold=5).full_clean()
    assert "queue" in error.value.message_dict
