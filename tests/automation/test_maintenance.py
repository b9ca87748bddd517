"""Maintenance: guest API with the booking token, urgent alerts, recurring plans."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.db import transaction
from rest_framework.test import APIClient

from automation.choices import MaintenanceStatus, ReportedBy
from automation.handlers import email_about_maintenance
from automation.models import MaintenancePlan, MaintenanceRequest, OutboundMessage
from automation.services import (
    MaintenanceError,
    maintenance_plans_open_due,
    maintenance_request_transition,
)
from bookings.services import guest_token_issue
from pms.models import DomainEvent
from tests.automation.conftest import book


@pytest.mark.django_db
def test_guest_reports_an_urgent_issue_and_the_managers_are_alerted(alice, bob, future):
    booking = book(alice, future, future + timedelta(days=2))
    token = guest_token_issue(booking=booking)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    url = f"/api/v1/bookings/{booking.reference}/maintenance/"
    answer = api.post(url, {"title": "No hot water", "priority": "urgent"}, format="json")
    assert answer.status_code == 201, answer.json()
    request = MaintenanceRequest.objects.get(pk=answer.json()["id"])
    assert (request.booking, request.reported_by) == (booking, ReportedBy.GUEST)
    event = DomainEvent.objects.get(event_type="maintenance.reported")
    with transaction.atomic():
        email_about_maintenance(event)
        email_about_maintenance(event)  # redelivered: same key, one message
    alert = OutboundMessage.objects.get(kind="maintenance_urgent")
    assert alert.recipient == alice.manager.email and alert.subject.startswith("URGENT")

    assert api.post(url, {"title": ""}, format="json").json()["error"]["code"] == "invalid"
    other = book(bob, future, future + timedelta(days=2))
    stranger = f"/api/v1/bookings/{other.reference}/maintenance/"
    assert api.post(stranger, {"title": "x"}, format="json").status_code == 404
    assert APIClient().post(url, {"title": "x"}, format="json").status_code == 401
    assert MaintenanceRequest.objects.count() == 1


@pytest.mark.django_db
def test_workflow_refuses_illegal_transitions(alice):
    with transaction.atomic():
        request = MaintenanceRequest.objects.create(
            tenant=alice.tenant, property=alice.property, title="Leak", reported_by="staff"
        )
    done = maintenance_request_transition(request=request, to_status=MaintenanceStatus.DONE)
    assert done.resolved_at is not None
    with pytest.raises(MaintenanceError):
        maintenance_request_transition(request=request, to_status=MaintenanceStatus.IN_PROGRESS)


@pytest.mark.django_db
def test_recurring_plan_opens_one_request_per_due_date_in_local_time(alice):
    alice.property.timezone = "Pacific/Auckland"
    alice.property.save()
    plan = MaintenancePlan.objects.create(
        tenant=alice.tenant,
        property=alice.property,
        title="Boiler service",
        every_days=90,
        next_due=date(2026, 6, 2),
    )
    with time_machine.travel(datetime(2026, 6, 1, 11, 0, tzinfo=UTC), tick=False):
        assert maintenance_plans_open_due() == 0  # 23:00 on June 1st in Auckland
    with time_machine.travel(datetime(2026, 6, 1, 12, 30, tzinfo=UTC), tick=False):
        assert maintenance_plans_open_due() == 1  # 00:30 on June 2nd
        assert maintenance_plans_open_due() == 0
    plan.refresh_from_db()
    assert plan.next_due == date(2026, 8, 31)
    opened = MaintenanceRequest.objects.get(plan=plan)
    assert (opened.due_on, opened.reported_by) == (date(2026, 6, 2), ReportedBy.SCHEDULE)
