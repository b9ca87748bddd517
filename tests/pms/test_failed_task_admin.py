"""Staff review of failed tasks in the admin: retry, resolve, discard; permissions; tenants."""

from __future__ import annotations

import pytest
from django.utils import timezone

from pms.choices import DeliveryStatus, FailedTaskStatus
from pms.models import EventDelivery, FailedTask
from pms.pipeline.redis_client import redis_client
from tenants.choices import Role
from tenants.models import Membership
from tenants.permissions import ROLE_GRANTS
from testkit.processes import wait_until
from tests.factories import PASSWORD, UserFactory
from tests.support.fault_handlers import control_key
from tests.support.pipeline import assert_pipeline_settled, effects, emit_probe

CHANGELIST = "/admin/pms/failedtask/"


def _failed(world, **fields) -> FailedTask:
    now = timezone.now()
    defaults = {
        "task_id": f"task-{world.tenant.slug}",
        "task_name": "handlers.tests.effect",
        "queue": "bookings",
        "args": [1],
        "tenant": world.tenant,
        "exception_class": "pms.pipeline.errors.PermanentError",
        "exception_message": f"{world.tenant.slug} broke",
        "first_failed_at": now,
        "last_failed_at": now,
    }
    return FailedTask.objects.create(**{**defaults, **fields})


def _act(client, action, failed, **extra):
    return client.post(CHANGELIST, {"action": action, "_selected_action": [failed.pk], **extra})


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_retry_from_the_admin_reruns_the_task_and_resolves_it(live_worker, client, alice):
    event = emit_probe(alice.tenant, mode="permanent")
    redis_client().set(control_key("fault", event.id), 1, ex=300)
    failed = wait_until(
        lambda: FailedTask.objects.filter(event=event).first(), 20, what="FailedTask"
    )

    client.login(username=alice.staff.username, password=PASSWORD)
    # First retry while the fault is still there: it fails again, same row reopened.
    _act(client, "retry_selected", failed)
    wait_until(
        lambda: FailedTask.objects.filter(pk=failed.pk, failure_count=2, status="open").exists(),
        20,
        what="the retry to fail again",
    )
    assert FailedTask.objects.count() == 1

    redis_client().delete(control_key("fault", event.id))  # the fault is gone
    response = _act(client, "retry_selected", failed)
    assert response.status_code == 302
    wait_until(
        lambda: FailedTask.objects.filter(pk=failed.pk, status=FailedTaskStatus.RESOLVED).exists(),
        20,
        what="the retry to succeed",
    )
    failed.refresh_from_db()
    assert failed.acted_by == alice.staff
    assert [a.action for a in failed.actions.all()] == [
        "failed",
        "retry",
        "failed",
        "retry",
        "succeeded",
    ]
    assert failed.delivery_id is not None
    assert EventDelivery.objects.get(pk=failed.delivery_id).status == DeliveryStatus.DONE
    assert effects(event) == 1
    assert_pipeline_settled()


@pytest.mark.django_db
def test_discard_needs_a_reason_and_records_who_and_why(client, alice):
    failed = _failed(alice)
    client.login(username=alice.staff.username, password=PASSWORD)

    response = _act(client, "discard_selected", failed, apply="Discard", note="")
    assert response.status_code == 200
    assert "This field is required" in response.content.decode()
    failed.refresh_from_db()
    assert failed.status == FailedTaskStatus.OPEN

    _act(
        client,
        "discard_selected",
        failed,
        apply="Discard",
        note="duplicate of booking #12, handled by phone",
    )
    failed.refresh_from_db()
    assert failed.status == FailedTaskStatus.DISCARDED
    assert failed.acted_by == alice.staff and "handled by phone" in failed.action_note


@pytest.mark.django_db
def test_resolve_with_a_note(client, alice):
    failed = _failed(alice)
    client.login(username=alice.manager.username, password=PASSWORD)
    _act(client, "resolve_selected", failed, apply="Resolve", note="fixed the guest email by hand")
    failed.refresh_from_db()
    assert failed.status == FailedTaskStatus.RESOLVED
    assert failed.actions.get().action == "resolve"


@pytest.mark.django_db
def test_detail_shows_pretty_arguments_and_the_traceback(client, alice):
    failed = _failed(
        alice, args=[42, {"x": 1}], traceback="Traceback (most recent call last):\n  boom"
    )
    client.login(username=alice.staff.username, password=PASSWORD)
    body = client.get(f"{CHANGELIST}{failed.pk}/change/").content.decode()
    assert "&quot;x&quot;: 1" in body and "boom" in body


@pytest.mark.django_db
def test_staff_without_the_permission_cannot_act(client, alice, monkeypatch):
    # Rights come from the role in the row's tenant (tenants.permissions): a staff role
    # that may view failed tasks but not act on them.
    viewing_only = ROLE_GRANTS[Role.STAFF] - {"pms.act_on_failedtask", "pms.change_failedtask"}
    monkeypatch.setitem(ROLE_GRANTS, Role.STAFF, viewing_only)
    viewer = UserFactory.create(username="viewer", is_staff=True)
    Membership.objects.create(user=viewer, tenant=alice.tenant, role=Role.STAFF)
    failed = _failed(alice)
    client.login(username="viewer", password=PASSWORD)

    page = client.get(CHANGELIST).content.decode()
    assert failed.exception_message in page
    assert "retry_selected" not in page and "discard_selected" not in page
    _act(client, "retry_selected", failed)
    _act(client, "discard_selected", failed, apply="Discard", note="nope")
    failed.refresh_from_db()
    assert failed.status == FailedTaskStatus.OPEN and failed.acted_by is None


@pytest.mark.django_db
def test_a_manager_of_tenant_b_cannot_see_or_act_on_tenant_a_failures(client, alice, bob):
    mine, theirs = _failed(bob), _failed(alice)
    client.login(username=bob.manager.username, password=PASSWORD)
    page = client.get(CHANGELIST).content.decode()
    assert mine.exception_message in page and theirs.exception_message not in page
    assert client.get(f"{CHANGELIST}{theirs.pk}/change/").status_code == 404
    _act(client, "discard_selected", theirs, apply="Discard", note="not mine")
    theirs.refresh_from_db()
    assert theirs.status == FailedTaskStatus.OPEN


@pytest.mark.django_db
def test_failed_tasks_are_never_deleted(client, superuser, alice):
    failed = _failed(alice)
    client.login(username="root", password=PASSWORD)
    assert client.get(f"{CHANGELIST}{failed.pk}/delete/").status_code == 403
