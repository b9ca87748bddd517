"""Automation's admin writes through its services, and adds to the booking page from its side."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction

from automation.choices import ReportedBy
from automation.models import OutboundMessage
from automation.services import cleaning_task_reconcile, maintenance_request_create
from pms.models import DomainEvent
from tests.automation.conftest import book, make_cleaner
from tests.factories import PASSWORD
from tests.support.admin_forms import change_form_data

pytestmark = pytest.mark.django_db


def test_editing_a_maintenance_request_in_the_admin_is_an_event(client, alice):
    request = maintenance_request_create(
        property=alice.property, title="Leaking tap", reported_by=ReportedBy.STAFF
    )
    client.login(username=alice.manager.username, password=PASSWORD)
    url = f"/admin/automation/maintenancerequest/{request.pk}/change/"
    data = change_form_data(client, url, title="Dripping tap in the kitchen", priority="high")
    data.pop("photo", None)  # no new upload
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    request.refresh_from_db()
    assert (request.title, request.priority) == ("Dripping tap in the kitchen", "high")
    updated = DomainEvent.objects.get(
        aggregate_id=str(request.pk), event_type="maintenance.updated"
    )
    assert updated.actor == f"admin:{alice.manager.username}"
    assert sorted(updated.payload["changed"]) == ["priority", "title"]


def test_a_manager_reassigns_a_cleaning_task_in_the_admin(client, alice, future):
    ana, ben = make_cleaner(alice, "ana"), make_cleaner(alice, "ben")
    with transaction.atomic():
        task = cleaning_task_reconcile(
            booking_id=book(alice, future, future + timedelta(days=2)).pk
        )
    assert task is not None
    other = ben if task.assignee == ana else ana
    client.login(username=alice.manager.username, password=PASSWORD)
    url = f"/admin/automation/cleaningtask/{task.pk}/change/"
    response = client.post(url, change_form_data(client, url, assignee=other.pk))
    assert response.status_code == 302, response.content.decode()[:3000]
    task.refresh_from_db()
    assert task.assignee == other


def test_the_booking_page_offers_automations_link_email_and_lists_its_messages(
    client, alice, future
):
    stay = book(alice, future, future + timedelta(days=3))
    stay.guest.email = "ana@example.test"
    stay.guest.save(update_fields=["email"])
    client.login(username=alice.manager.username, password=PASSWORD)
    changelist = "/admin/bookings/booking/"
    choices = [
        name for name, _ in client.get(changelist).context["action_form"].fields["action"].choices
    ]
    assert choices[:3] == ["", "delete_selected", "send_guest_link"]
    response = client.post(
        changelist, {"action": "send_guest_link", "_selected_action": [stay.pk]}, follow=True
    )
    assert b"New link queued for 1 guest(s)." in response.content
    assert OutboundMessage.objects.filter(booking=stay, kind="guest_access").count() == 1
    page = client.get(f"/admin/bookings/booking/{stay.pk}/change/").content.decode()
    assert "messages (scheduled, sent, failed, cancelled)" in page.lower()
