"""Every log line and every task message carries the tenant it works for."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from config.queues import DEFAULT_QUEUE
from pms.pipeline.log_context import NO_TENANT, bind_tenant, current_tenant
from pms.pipeline.publishing import delivery_task_id
from pms.tasks import probe_echo
from testkit.processes import wait_until
from tests.factories import PASSWORD
from tests.support.pipeline import assert_pipeline_settled, emit_probe
from tests.support.servers import log_count


@pytest.fixture(autouse=True)
def _clean_context():
    token = current_tenant.set(NO_TENANT)
    yield
    current_tenant.reset(token)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_handlers_log_lines_name_its_tenant(live_worker, alice):
    event = emit_probe(alice.tenant)
    assert_pipeline_settled()
    task_id = delivery_task_id(event.id, "tests.effect")
    line = f"tenant={alice.tenant.pk} Task handlers.tests.effect[{task_id}] succeeded"
    wait_until(lambda: log_count(live_worker.logfile, line), 10, what="the tenant-stamped log line")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_task_sent_while_working_for_a_tenant_carries_its_id(live_worker, alice):
    bind_tenant(alice.tenant.pk)
    answer = probe_echo.apply_async(queue=DEFAULT_QUEUE).get(timeout=20)
    assert answer["tenant_id"] == alice.tenant.pk


@pytest.mark.django_db
def test_a_managers_request_logs_under_their_tenant(client, alice, future, caplog):
    client.login(username=alice.manager.username, password=PASSWORD)
    with caplog.at_level(logging.INFO, logger="bookings.services.lifecycle"):
        response = client.post(
            "/admin/bookings/booking/add/",
            {
                "tenant": alice.tenant.pk,
                "property": alice.property.pk,
                "guest": alice.guest.pk,
                "check_in": future.isoformat(),
                "check_out": (future + timedelta(days=2)).isoformat(),
                "guests_count": 1,
                "source": "admin",
            },
        )
    assert response.status_code == 302
    created = [r for r in caplog.records if r.getMessage().startswith("booking created")]
    assert [r.tenant_id for r in created] == [str(alice.tenant.pk)]


@pytest.mark.django_db
def test_a_guests_api_request_logs_under_the_hosts_tenant(alice, future, caplog):
    from rest_framework.test import APIClient

    with caplog.at_level(logging.INFO, logger="bookings.services.lifecycle"):
        APIClient().post(
            "/api/v1/bookings/",
            {
                "property": str(alice.property.public_id),
                "check_in": future.isoformat(),
                "check_out": (future + timedelta(days=2)).isoformat(),
                "guests": 1,
                "guest": {"name": "Ana", "email": "ana@example.test"},
            },
            format="json",
            HTTP_IDEMPOTENCY_KEY="log-1",
        )
    created = [r for r in caplog.records if r.getMessage().startswith("booking created")]
    assert [r.tenant_id for r in created] == [str(alice.tenant.pk)]
