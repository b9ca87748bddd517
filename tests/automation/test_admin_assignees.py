"""Who the admin offers as an assignee: members of the task's own tenant, nobody else."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction

from automation.choices import ReportedBy
from automation.services import cleaning_task_reconcile, maintenance_request_create
from tenants.choices import Role
from tenants.services import membership_grant
from tests.automation.conftest import book, make_cleaner
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_request(alice):
    return maintenance_request_create(
        property=alice.property, title="Leaking tap", reported_by=ReportedBy.STAFF
    )


def _choices(client, url, field):
    page = client.get(url)
    assert page.status_code == 200, page.status_code
    return set(page.context["adminform"].form.fields[field].queryset)


def test_the_maintenance_assignee_list_holds_only_members_of_the_requests_tenant(
    client, alice, bob, outsider, alice_request
):
    url = f"/admin/automation/maintenancerequest/{alice_request.pk}/change/"
    client.login(username=alice.manager.username, password=PASSWORD)
    offered = _choices(client, url, "assignee")
    assert {alice.manager, alice.staff} <= offered
    assert not offered & {bob.manager, bob.staff, outsider}


def test_a_manager_of_two_tenants_is_offered_only_the_requests_tenants_members(
    client, alice, bob, alice_request
):
    membership_grant(user=alice.manager, tenant=bob.tenant, role=Role.MANAGER)
    client.login(username=alice.manager.username, password=PASSWORD)
    offered = _choices(
        client, f"/admin/automation/maintenancerequest/{alice_request.pk}/change/", "assignee"
    )
    assert alice.staff in offered and bob.staff not in offered


def test_a_superuser_is_offered_only_the_requests_tenants_members(
    client, alice, bob, superuser, alice_request
):
    client.force_login(superuser)
    offered = _choices(
        client, f"/admin/automation/maintenancerequest/{alice_request.pk}/change/", "assignee"
    )
    assert alice.staff in offered and bob.staff not in offered and superuser not in offered


def test_assigning_someone_of_another_tenant_is_a_form_error(client, alice, bob, alice_request):
    client.login(username=alice.manager.username, password=PASSWORD)
    url = f"/admin/automation/maintenancerequest/{alice_request.pk}/change/"
    response = client.post(
        url,
        {
            "title": alice_request.title,
            "priority": alice_request.priority,
            "assignee": bob.staff.pk,
        },
    )
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    alice_request.refresh_from_db()
    assert alice_request.assignee is None


def test_the_cleaning_assignee_list_holds_only_cleaners_of_the_tasks_tenant(
    client, alice, bob, future
):
    ana, cy = make_cleaner(alice, "ana"), make_cleaner(bob, "cy")
    with transaction.atomic():
        task = cleaning_task_reconcile(
            booking_id=book(alice, future, future + timedelta(days=2)).pk
        )
    assert task is not None
    both = UserFactory.create(username="two-tenants")
    membership_grant(user=both, tenant=alice.tenant, role=Role.MANAGER)
    membership_grant(user=both, tenant=bob.tenant, role=Role.MANAGER)
    client.force_login(both)
    offered = _choices(client, f"/admin/automation/cleaningtask/{task.pk}/change/", "assignee")
    assert offered == {ana}
    assert cy not in offered
