"""The admin of fair admission: per tenant and kind, what waits, runs and is deferred; the
endpoints' circuits; each tenant sees only its own."""

from __future__ import annotations

import pytest
from django.utils import timezone

from pms.models import EndpointCircuit, FairWorkItem
from pms.pipeline.endpoints import circuit_record
from pms.pipeline.fairness import fair_submit
from tests.factories import PASSWORD

WORK = "/admin/pms/fairworkitem/"
CIRCUITS = "/admin/pms/endpointcircuit/"
HOOK = "http://127.0.0.1:9"


def _work(world, scope, count, *, lane="", dispatched=False):
    for i in range(count):
        item = fair_submit(
            tenant_id=world.tenant.pk,
            scope=scope,
            task_name="tests.fair_work",
            args=[i],
            queue="outbound",
            lane=lane,
        )
        assert item is not None
        if dispatched:
            FairWorkItem.objects.filter(pk=item.pk).update(dispatched_at=timezone.now())


def _open_circuit(world, lane=HOOK):
    for _ in range(5):
        circuit_record(tenant_id=world.tenant.pk, lane=lane, failed=True, seconds=0.1, error="503")
    return EndpointCircuit.objects.get(tenant=world.tenant, lane=lane)


def _summary(response):
    return {(load.tenant_name, load.scope): load for load, _cap in response.context["fair_loads"]}


@pytest.mark.django_db
def test_a_manager_sees_their_tenants_waiting_in_flight_and_deferred_work(client, alice, bob):
    _work(alice, "sync", 7)
    _work(alice, "sync", 2, dispatched=True)
    _work(alice, "webhooks", 3, lane=HOOK)
    _open_circuit(alice)
    _work(bob, "messages", 5)
    client.login(username=alice.manager.username, password=PASSWORD)
    response = client.get(WORK)
    assert response.status_code == 200
    summary = _summary(response)
    assert set(summary) == {(alice.tenant.name, "sync"), (alice.tenant.name, "webhooks")}
    sync, webhooks = summary[(alice.tenant.name, "sync")], summary[(alice.tenant.name, "webhooks")]
    assert (sync.waiting, sync.in_flight, sync.deferred) == (7, 2, 0)
    assert (webhooks.waiting, webhooks.in_flight, webhooks.deferred) == (0, 0, 3)
    page = response.content.decode()
    assert "fair-work-summary" in page and bob.tenant.name not in page
    # The state filter lists the deferred items themselves.
    deferred = client.get(WORK, {"state": "deferred"})
    assert deferred.context["cl"].result_count == 3


@pytest.mark.django_db
def test_the_superuser_sees_every_tenant(admin_client, alice, bob):
    _work(alice, "sync", 1)
    _work(bob, "messages", 2)
    summary = _summary(admin_client.get(WORK))
    assert summary[(bob.tenant.name, "messages")].waiting == 2
    assert summary[(alice.tenant.name, "sync")].waiting == 1


@pytest.mark.django_db
def test_a_manager_closes_their_own_circuit_and_never_sees_another_tenants(client, alice, bob):
    mine, theirs = _open_circuit(alice), _open_circuit(bob)
    client.login(username=alice.manager.username, password=PASSWORD)
    listing = client.get(CIRCUITS)
    assert [c.pk for c in listing.context["cl"].result_list] == [mine.pk]
    assert client.get(f"{CIRCUITS}{theirs.pk}/change/").status_code in (302, 404)
    response = client.post(
        CIRCUITS,
        {"action": "close_selected", "_selected_action": [mine.pk, theirs.pk]},
        follow=True,
    )
    assert response.status_code == 200
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.state == "closed"
    assert theirs.state == "open"  # not in the manager's tenant: untouched


@pytest.mark.django_db
def test_staff_may_look_but_not_close_a_circuit(client, alice):
    circuit = _open_circuit(alice)
    client.login(username=alice.staff.username, password=PASSWORD)
    assert client.get(CIRCUITS).status_code == 200
    client.post(CIRCUITS, {"action": "close_selected", "_selected_action": [circuit.pk]})
    circuit.refresh_from_db()
    assert circuit.state == "open"
