"""Rule evaluation on measured values (the worker path is covered in test_no_consumer)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from pms.models import EventDelivery
from pms.models.monitoring import AlertKind, AlertRule
from pms.monitoring.alerts import _evaluate_rule
from pms.monitoring.overview import pending_deliveries, queue_overview
from pms.monitoring.task_stats import read_task_stats, record_run
from tests.support.pipeline import emit_probe


@pytest.mark.django_db
def test_failure_rate_fires_over_the_threshold_once_enough_tasks_ran(settings, broker):
    settings.OPS_ALERT_FAILURE_RATE_MIN_RUNS = 5
    rule = AlertRule.objects.create(kind=AlertKind.FAILURE_RATE, threshold=30)
    for outcome in ["ok", "failed", "failed"]:
        record_run(queue="payments", task_name="pay", outcome=outcome, runtime=0.2)
    assert "payments" not in _evaluate_rule(rule, queue_overview()).firing  # 3 runs: too few
    for outcome in ["ok", "ok", "retried", "retried"]:
        record_run(queue="payments", task_name="pay", outcome=outcome, runtime=3)
    stats = read_task_stats()
    rates = stats.last_5_minutes["payments"]
    assert (rates.processed, rates.failed, rates.retried) == (5, 2, 2)
    assert rates.failure_rate == 40
    # The session worker may finish leftovers of earlier tests meanwhile: look at ours.
    (pay,) = [runtime for runtime in stats.runtimes if runtime.task_name == "pay"]
    assert pay.runs == 7 and pay.p50 == 5 and pay.p95 == 5  # bucket upper bounds
    result = _evaluate_rule(rule, queue_overview())
    assert result.firing["payments"].value == 40
    assert "bookings" in result.known and "bookings" not in result.firing


@pytest.mark.django_db
def test_outbox_deliveries_past_their_deadline_and_grace_fire(settings, alice):
    settings.OPS_ALERT_OUTBOX_GRACE_SECONDS = 60
    rule = AlertRule.objects.create(kind=AlertKind.OUTBOX_OVERDUE, threshold=2)
    event = emit_probe(alice.tenant)  # the test's transaction never commits: nothing published
    deliveries = EventDelivery.objects.filter(event=event)
    assert deliveries.count() == 2
    assert not _evaluate_rule(rule, queue_overview()).firing
    deliveries.update(due_at=timezone.now() - timedelta(seconds=61))
    assert _evaluate_rule(rule, queue_overview()).firing["outbox"].value == 2
    assert pending_deliveries() == {"pending": 2, "overdue": 2}


@pytest.mark.django_db
def test_channel_rule_fires_on_real_stale_channels_naming_ids_only(alice):
    """Channel health comes from channel sync's real provider (registered in its app)."""
    from datetime import timedelta

    from django.utils import timezone

    from channelsync.models import Channel

    rule = AlertRule.objects.create(kind=AlertKind.CHANNEL_STALE, threshold=1)
    now = timezone.now()
    stale = Channel.objects.create(
        tenant=alice.tenant,
        property=alice.property,
        name="Airbnb feed",
        kind="airbnb",
        import_url="https://calendar.example.com/a.ics",
        poll_interval=timedelta(hours=1),
        last_success_at=now - timedelta(hours=5),
    )
    Channel.objects.create(
        tenant=alice.tenant,
        property=alice.property,
        name="Vrbo feed",
        kind="vrbo",
        import_url="https://calendar.example.com/v.ics",
        poll_interval=timedelta(hours=1),
        last_success_at=now - timedelta(minutes=10),
    )
    firing = _evaluate_rule(rule, queue_overview()).firing["channels"]
    assert firing.value == 1
    # The message goes to operators' email/webhook: ids, never a tenant's channel name.
    assert f"channel #{stale.pk} (tenant #{alice.tenant.pk})" in firing.message
    assert "Airbnb feed" not in firing.message

    Channel.objects.filter(pk=stale.pk).update(last_success_at=now)
    assert "channels" not in _evaluate_rule(rule, queue_overview()).firing
