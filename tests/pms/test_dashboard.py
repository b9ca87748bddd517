"""The admin index is the manager's day: each panel counts, lists and links, per tenant and role."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from automation.choices import MaintenancePriority, ReportedBy
from automation.models import CleaningTask
from automation.services import cleaning_task_reconcile, maintenance_request_create
from bookings.choices import MessageSender
from bookings.services import (
    block_create,
    booking_create,
    guest_message_post,
    payment_request,
)
from channelsync.choices import ChannelStatus
from channelsync.models import Conflict
from channelsync.services import channel_create
from pms.choices import FailedTaskStatus
from pms.models import FailedTask
from tenants.choices import Role
from tenants.services import membership_grant
from tests.factories import PropertyFactory, UserFactory

pytestmark = pytest.mark.django_db


def _day(world, n_properties: int = 1, *, new_homes: bool = False) -> list:
    """A busy day at ``world``: arrivals, departures, cleaning, a question, money, trouble."""
    today = timezone.localdate()
    made = []
    for index in range(n_properties):
        first = index == 0 and not new_homes
        prop = world.property if first else PropertyFactory.create(tenant=world.tenant)
        leaving = booking_create(
            tenant=world.tenant,
            property=prop,
            guest=world.guest,
            check_in=today - timedelta(days=2),
            check_out=today,
            allow_past=True,
        )
        arriving = booking_create(
            tenant=world.tenant,
            property=prop,
            guest=world.guest,
            check_in=today,
            check_out=today + timedelta(days=3),
        )
        with transaction.atomic():  # as in its handler
            cleaning_task_reconcile(booking_id=leaving.pk)
        guest_message_post(booking=arriving, sender=MessageSender.GUEST, body="Parking?")
        payment_request(booking=arriving, amount=arriving.total)
        made.append((leaving, arriving))
    channel = channel_create(
        tenant=world.tenant,
        property=world.property,
        name=f"{world.tenant.slug} Airbnb",
        kind="airbnb",
        poll_interval=timedelta(minutes=15),
    )
    channel.status, channel.consecutive_failures = ChannelStatus.ERROR, 3
    channel.save(update_fields=["status", "consecutive_failures"])
    block = block_create(
        tenant=world.tenant,
        property=world.property,
        start=today + timedelta(days=1),
        end=today + timedelta(days=2),
        source="channel",
        allow_overlap=True,
    )
    Conflict.objects.create(
        tenant=world.tenant,
        property=world.property,
        channel=channel,
        block=block,
        booking=made[0][1],
        start=block.start,
        end=block.end,
    )
    maintenance_request_create(
        property=world.property,
        title="Boiler out",
        reported_by=ReportedBy.GUEST,
        priority=MaintenancePriority.URGENT,
    )
    now = timezone.now()
    FailedTask.objects.create(
        task_id=f"failed-{uuid.uuid4()}",
        task_name="channelsync.tasks.import_channel",
        tenant=world.tenant,
        exception_class="ChannelFetchError",
        exception_message="feed answered 500",
        first_failed_at=now,
        last_failed_at=now,
        status=FailedTaskStatus.OPEN,
    )
    return made


def _panels(client, user) -> dict[str, str]:
    client.force_login(user)
    page = client.get("/admin/")
    assert page.status_code == 200
    html = page.content.decode()
    return dict(
        re.findall(r'<article class="[^"]*" id="panel-([a-z_]+)">(.*?)</article>', html, re.S)
    )


def _count(panel_html: str) -> int:
    found = re.search(r'class="count"[^>]*>(\d+)<', panel_html)
    assert found is not None, panel_html
    return int(found.group(1))


def test_a_manager_sees_their_day_and_nothing_of_another_tenant(client, alice, bob):
    _day(alice)
    _day(bob)
    panels = _panels(client, alice.manager)
    assert {
        "arrivals",
        "departures",
        "turnovers",
        "unassigned_cleaning",
        "messages",
        "overdue_payments",
        "maintenance",
        "conflicts",
        "channels",
        "failed_tasks",
    } <= set(panels)
    expected = {
        "arrivals": 1,
        "departures": 1,
        "turnovers": 1,
        "unassigned_cleaning": 1,
        "messages": 1,
        "overdue_payments": 1,  # arrives today, not paid
        "maintenance": 1,
        "conflicts": 1,
        "channels": 1,
        "failed_tasks": 1,
    }
    assert {key: _count(panels[key]) for key in expected} == expected
    everything = "".join(panels.values())
    assert "Alice Villa" in everything and "Parking?" in everything
    assert "Bob" not in everything and "bob Airbnb" not in everything


def test_each_count_links_to_the_list_that_shows_them(client, alice, bob):
    _day(alice)
    _day(bob)
    panels = _panels(client, alice.manager)
    for key, html in panels.items():
        link = re.search(r'<a class="count" href="([^"]+)"', html)
        assert link is not None, key
        listing = client.get(link.group(1).replace("&amp;", "&"))
        assert listing.status_code == 200, (key, link.group(1))
        shown = listing.context["cl"].result_count
        assert shown == _count(html), (key, link.group(1), shown)


def test_a_cleaner_sees_only_their_own_cleaning(client, alice):
    _day(alice, n_properties=2)
    cleaner = UserFactory.create(username="alice-cleaner")
    membership_grant(user=cleaner, tenant=alice.tenant, role=Role.CLEANER)
    task = CleaningTask.objects.filter(tenant=alice.tenant).order_by("pk")[0]
    task.assignee = cleaner
    task.save(update_fields=["assignee"])
    panels = _panels(client, cleaner)
    assert set(panels) == {"turnovers"}
    assert _count(panels["turnovers"]) == 1 and task.property.name in panels["turnovers"]


def test_requests_to_answer_link_to_the_awaiting_list(client, alice, future):
    alice.property.booking_mode = "request"
    alice.property.save(update_fields=["booking_mode"])
    booking_create(
        tenant=alice.tenant,
        property=alice.property,
        guest=alice.guest,
        check_in=future,
        check_out=future + timedelta(days=2),
        status="requested",
    )
    panels = _panels(client, alice.manager)
    assert _count(panels["requests"]) == 1 and "answer within" in panels["requests"]
    link = re.search(r'<a class="count" href="([^"]+)"', panels["requests"])
    assert link is not None
    listing = client.get(link.group(1).replace("&amp;", "&"))
    assert listing.context["cl"].result_count == 1


def test_someone_without_a_role_gets_no_panels(client, outsider, alice):
    _day(alice)
    assert _panels(client, outsider) == {}


def test_the_dashboard_costs_the_same_queries_for_one_home_or_twenty(client, alice):
    _day(alice, n_properties=1)
    client.force_login(alice.manager)
    client.get("/admin/")  # warm the per-process caches (content types, permissions)
    with CaptureQueriesContext(connection) as small:
        assert client.get("/admin/").status_code == 200
    _day(alice, n_properties=19, new_homes=True)
    with CaptureQueriesContext(connection) as large:
        assert client.get("/admin/").status_code == 200
    assert len(large) == len(small), [q["sql"][:120] for q in large.captured_queries]
    assert len(small) <= 40


def test_guests_awaiting_a_reply_are_found_once_for_the_count_and_the_rows(client, alice):
    """The unanswered messages are one scan of every thread: not a COUNT and a LIMIT both."""
    _day(alice, n_properties=10)  # ten unanswered questions, more than a panel shows
    client.force_login(alice.manager)
    client.get("/admin/")
    with CaptureQueriesContext(connection) as page:
        panels = _panels(client, alice.manager)
    assert _count(panels["messages"]) == 10
    assert panels["messages"].count("<li") == 8
    assert "All 10" in panels["messages"]
    scans = [
        q["sql"]
        for q in page.captured_queries
        if 'NOT EXISTS(SELECT 1 AS "a" FROM "bookings_guestmessage"' in q["sql"]
    ]
    assert len(scans) == 1, scans
