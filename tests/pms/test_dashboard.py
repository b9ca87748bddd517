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


def test_a_thread_waits_from_the_guests_first_unanswered_message_to_the_hosts_reply(client, alice):
    """The panel lists threads whose guest wrote last, oldest wait first, with the last words."""
    (_, first), (_, second) = _day(alice, n_properties=2)  # each asked "Parking?"
    first.refresh_from_db()
    waiting_since = first.awaiting_reply_since
    assert waiting_since is not None
    guest_message_post(booking=first, sender=MessageSender.GUEST, body="And a cot?")
    first.refresh_from_db()
    assert first.awaiting_reply_since == waiting_since  # the wait began with the first
    panel = _panels(client, alice.manager)["messages"]
    assert _count(panel) == 2
    assert "And a cot?" in panel and panel.index("And a cot?") < panel.index("Parking?")

    guest_message_post(booking=first, sender=MessageSender.HOST, body="Yes to both.", author="m")
    first.refresh_from_db()
    assert first.awaiting_reply_since is None
    panel = _panels(client, alice.manager)["messages"]
    assert _count(panel) == 1 and "And a cot?" not in panel
    listing = client.get("/admin/bookings/booking/", {"awaiting_reply": "yes"})
    assert [b.pk for b in listing.context["cl"].result_list] == [second.pk]

    guest_message_post(booking=first, sender=MessageSender.GUEST, body="Thanks! Late out?")
    first.refresh_from_db()
    assert first.awaiting_reply_since > waiting_since  # a new wait, from the new question
    assert _count(_panels(client, alice.manager)["messages"]) == 2


def test_the_migration_fills_the_wait_of_threads_written_before_it(alice):
    """Threads that existed before the stored wait get it from their messages."""
    import importlib

    from django.apps import apps

    from bookings.models import Booking, GuestMessage

    migration = importlib.import_module("bookings.migrations.0009_booking_awaiting_reply_since")
    (_, asked), (_, answered) = _day(alice, n_properties=2)
    guest_message_post(booking=answered, sender=MessageSender.HOST, body="Yes.", author="m")
    guest_message_post(booking=asked, sender=MessageSender.GUEST, body="And a cot?")
    first_question = GuestMessage.objects.filter(booking=asked).earliest("created_at")
    Booking.objects.update(awaiting_reply_since=None)  # as before the column existed

    migration.fill_awaiting_reply_since(apps, None)

    waits = dict(Booking.objects.values_list("pk", "awaiting_reply_since"))
    assert waits[asked.pk] == first_question.created_at
    assert waits[answered.pk] is None
    assert sum(1 for since in waits.values() if since is not None) == 1
