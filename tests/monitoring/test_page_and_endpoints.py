"""Who sees the queue-health page and what; /metrics, /health/ and /health/live/;
samples and charts."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.db.models.signals import post_init
from django.utils import timezone

from pms.models import FailedTask
from pms.models.monitoring import AlertIncident, AlertKind, AlertRule, QueueSample
from pms.monitoring.sampling import queue_sample_take, queue_samples_purge, queue_samples_since
from pms.monitoring.signals import BEAT_TICK_KEY, beat_last_tick, stamp_publish_time
from pms.pipeline.redis_client import redis_client
from tests.factories import PASSWORD
from tests.monitoring.support import database_down

PAGE = "/admin/pms/queuesample/"


def _failed(world, task_id: str) -> FailedTask:
    now = timezone.now()
    return FailedTask.objects.create(
        task_id=task_id,
        task_name="handlers.tests.effect",
        queue="bookings",
        tenant=world.tenant,
        exception_class="pms.pipeline.errors.PermanentError",
        first_failed_at=now,
        last_failed_at=now,
    )


def _operator(username: str = "olga"):
    from pms.monitoring.operators import OPERATORS_GROUP
    from tests.factories import UserFactory

    user = UserFactory.create(username=username)
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    user.groups.add(Group.objects.get(name=OPERATORS_GROUP))  # created after migrate
    return user


@pytest.mark.django_db
def test_the_page_is_for_operators_and_superusers_not_tenant_roles(client, alice, bob, superuser):
    _failed(bob, "bob-1")
    _failed(bob, "bob-2")
    _failed(alice, "alice-1")
    rule = AlertRule.objects.create(kind=AlertKind.OUTBOX_OVERDUE, threshold=1)
    AlertIncident.objects.create(rule=rule, subject="outbox", message="42 deliveries overdue")

    # Worker hostnames, task names and every tenant's volumes: not for tenant roles.
    for member in (alice.manager, alice.staff):
        client.login(username=member.username, password=PASSWORD)
        assert client.get(PAGE).status_code == 403
        assert "Queue health" not in client.get("/admin/").content.decode()

    client.login(username=_operator().username, password=PASSWORD)
    page = client.get(PAGE)
    assert page.status_code == 200
    assert [q.name for q in page.context["overview"].queues][:2] == ["bookings", "messaging"]
    assert "42 deliveries overdue" in page.content.decode()
    assert "Queue health" in client.get("/admin/").content.decode()
    assert client.get("/admin/pms/alertrule/").status_code == 200

    client.login(username=superuser.username, password=PASSWORD)
    page = client.get(PAGE)
    assert page.context["open_failed_tasks"] == 3
    assert "42 deliveries overdue" in page.content.decode()
    assert "Queue health" in client.get("/admin/").content.decode()


@pytest.mark.django_db
def test_the_operators_group_is_created_idempotently_with_its_permissions():
    from django.core.management import call_command

    from pms.monitoring.operators import OPERATORS_GROUP

    Group.objects.filter(name=OPERATORS_GROUP).delete()
    call_command("setup_alert_rules", verbosity=0)
    call_command("setup_alert_rules", verbosity=0)
    group = Group.objects.get(name=OPERATORS_GROUP)
    assert sorted(group.permissions.values_list("codename", flat=True)) == [
        "change_alertrule",
        "view_alertincident",
        "view_alertrule",
        "view_queue_health",
    ]
    assert not Group.objects.exclude(name=OPERATORS_GROUP).filter(
        permissions__codename="view_queue_health"
    )


@pytest.mark.django_db
def test_users_without_the_permission_are_refused(client, outsider):
    client.login(username=outsider.username, password=PASSWORD)
    assert client.get(PAGE).status_code == 403


@pytest.mark.django_db
def test_metrics_and_health_answer_only_allowed_addresses_or_the_token(client, settings):
    settings.METRICS_TOKEN = "s3cret-token"
    remote = {"REMOTE_ADDR": "203.0.113.9"}
    assert client.get("/metrics", **remote).status_code == 403
    assert client.get("/health/", **remote).status_code == 403
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope", **remote)
    assert wrong.status_code == 403
    scraped = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token", **remote)
    assert scraped.status_code == 200
    body = scraped.content.decode()
    assert "pms_queue_depth{" in body and "pms_failed_tasks_open" in body
    assert "django_http_requests_total_by_method_total" in body  # django-prometheus
    assert client.get("/metrics").status_code == 200  # loopback is allowed by default
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200


@pytest.mark.django_db
def test_behind_a_local_proxy_loopback_is_not_trusted(client, settings):
    settings.METRICS_TRUST_LOOPBACK = False
    settings.METRICS_TOKEN = "s3cret-token"
    settings.METRICS_ALLOWED_IPS = ["127.0.0.1", "::1", "10.0.0.5"]
    assert client.get("/metrics").status_code == 403  # the proxy's address
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 403
    assert client.get("/health/").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.5").status_code == 200


@pytest.mark.django_db(transaction=True)  # the test takes the database connection down
def test_metrics_leave_out_gauges_whose_dependency_is_down(client):
    with database_down():
        scraped = client.get("/metrics")
        assert scraped.status_code == 200
        body = scraped.content.decode()
        assert 'pms_collector_errors{collector="failed_tasks"} 1.0' in body
        assert 'pms_collector_errors{collector="outbox"} 1.0' in body
        assert 'pms_collector_errors{collector="queues"} 0.0' in body
        assert "pms_failed_tasks_open " not in body
        assert 'pms_queue_depth{queue="bookings"}' in body  # the broker still answers
    body = client.get("/metrics").content.decode()
    assert 'pms_collector_errors{collector="failed_tasks"} 0.0' in body
    assert "pms_failed_tasks_open 0.0" in body


@pytest.mark.django_db(transaction=True)
def test_liveness_checks_the_process_and_database_only_and_is_open(client):
    remote = {"REMOTE_ADDR": "203.0.113.9"}  # a load balancer, not in the allowlist
    live = client.get("/health/live/", **remote)
    assert live.status_code == 200
    assert live.json() == {"status": "ok", "database": "ok"}
    assert client.get("/health/", **remote).status_code == 403  # the deep check stays closed
    with database_down():
        down = client.get("/health/live/", **remote)
    assert down.status_code == 503 and down.json()["status"] == "fail"
    assert client.get("/health/live/", **remote).status_code == 200


@pytest.mark.django_db
def test_samples_feed_the_charts_and_old_ones_are_purged(client, superuser, broker):
    old = QueueSample.objects.create(
        taken_at=timezone.now() - timedelta(hours=72), data={"bulk": [1, 1, 0, 0]}
    )
    first = queue_sample_take()
    second = queue_sample_take()
    assert set(first.data) >= {"bookings", "bulk", "default"}
    assert first.data["bulk"][0] == 0 and second.pk != first.pk

    client.login(username=superuser.username, password=PASSWORD)
    html = client.get(PAGE + "?hours=1").content.decode()
    assert html.count('class="queue-chart"') == 2 and "<polyline" in html

    assert queue_samples_purge() == 1
    assert not QueueSample.objects.filter(pk=old.pk).exists()
    assert QueueSample.objects.count() == 2


def test_beat_tick_is_recorded_when_beat_publishes_a_periodic_task():
    redis_client().delete(BEAT_TICK_KEY)
    headers: dict = {}
    stamp_publish_time(headers=headers)
    assert "published_at" in headers and beat_last_tick() is None
    stamp_publish_time(headers={"periodic_task_name": "outbox relay"})
    assert beat_last_tick() is not None


def test_a_republished_message_counts_its_age_from_its_latest_publish():
    headers = {"published_at": time.time() - 3600}  # copied from the first attempt
    stamp_publish_time(headers=headers)
    assert headers["published_at"] > time.time() - 5


@pytest.mark.django_db
def test_the_48_hour_chart_loads_about_one_row_per_point():
    now = timezone.now()
    QueueSample.objects.bulk_create(
        QueueSample(taken_at=now - timedelta(seconds=90 * index), data={"bulk": [index, 0, 0, 0]})
        for index in range(1900)  # 47.5 hours, one sample per 90 s
    )
    loaded = []

    def count(sender, instance, **kwargs):
        loaded.append(instance)

    post_init.connect(count, sender=QueueSample)
    try:
        samples = queue_samples_since(hours=48, max_points=240)
    finally:
        post_init.disconnect(count, sender=QueueSample)
    assert len(loaded) == len(samples) <= 241
    assert len(samples) >= 230
    times = [sample.taken_at for sample in samples]
    assert times == sorted(times)
    assert times[0] == now - timedelta(seconds=90 * 1899)  # the window's first sample


@pytest.mark.django_db(transaction=True)  # alerts are sent outside transactions only
def test_beat_silence_opens_and_its_return_resolves_an_incident(settings, mailoutbox):
    from pms.monitoring.alerts import alert_rules_evaluate

    settings.OPS_ALERT_EMAILS = ["oncall@example.test"]
    AlertRule.objects.create(kind=AlertKind.BEAT_SILENT, threshold=60, for_seconds=0)
    redis_client().set(BEAT_TICK_KEY, timezone.now().timestamp() - 600)
    assert alert_rules_evaluate()["opened"] == 1
    stamp_publish_time(headers={"periodic_task_name": "outbox relay"})
    assert alert_rules_evaluate()["resolved"] == 1
    incident = AlertIncident.objects.get()
    assert incident.notified_at and incident.recovered_notified_at
    assert [m.subject.split()[2] for m in mailoutbox] == ["ALERT", "RECOVERED"]
    assert mailoutbox[0].to == ["oncall@example.test"]


@pytest.mark.django_db
def test_default_alert_rules_come_from_settings_and_keep_admin_edits(settings):
    from django.core.management import call_command

    settings.OPS_ALERT_QUEUE_DEPTH = 250
    call_command("setup_alert_rules", verbosity=0)
    assert AlertRule.objects.count() == len(AlertKind.choices)
    depth = AlertRule.objects.get(kind=AlertKind.QUEUE_DEPTH, queue="")
    assert depth.threshold == 250
    depth.threshold = 40
    depth.save()
    call_command("setup_alert_rules", verbosity=0)
    assert AlertRule.objects.get(pk=depth.pk).threshold == 40
    assert AlertRule.objects.count() == len(AlertKind.choices)
