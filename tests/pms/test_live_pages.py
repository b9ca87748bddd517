"""Live pages (pms.live): the live server pushes what changed to the pages people have open.

A real uvicorn process serves ``config.asgi`` on the test database; the tests connect
as a browser does (session cookie, Origin of the page) with a WebSocket client.
"""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from bookings.services import block_create, booking_cancel, booking_create
from pms.models import FailedTask
from pms.pipeline.failures import failed_task_resolve
from pms.pipeline.redis_client import redis_client
from tenants.choices import Role
from tenants.models import Membership
from tenants.services import membership_grant
from testkit.processes import wait_until
from tests.factories import UserFactory
from tests.support.fault_handlers import control_key
from tests.support.pipeline import emit_probe
from tests.support.stays import book_stay

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = "http://127.0.0.1:8000"
CALENDAR = "/admin/bookings/booking/calendar/"


def _cookie(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def _open(
    server: Any, user: Any | None, path: str, query: str = "", origin: str = ORIGIN
) -> ClientConnection:
    headers = {"Origin": origin}
    if user is not None:
        headers["Cookie"] = _cookie(user)
    return connect(server.url(path, query), additional_headers=headers, open_timeout=10)


def _pushes(ws: ClientConnection, seconds: float) -> list[dict[str, str]]:
    """Every region push that arrives within ``seconds``."""
    found, deadline = [], time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            found.append(json.loads(ws.recv(timeout=left))["regions"])
        except TimeoutError:
            break
    return found


def _until(ws: ClientConnection, needle: str, seconds: float) -> float:
    """Seconds until a push holding ``needle`` arrives; fails after ``seconds``."""
    started, deadline = time.monotonic(), time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            regions = json.loads(ws.recv(timeout=left))["regions"]
        except TimeoutError:
            break
        if any(needle in html for html in regions.values()):
            return time.monotonic() - started
    raise AssertionError(f"no push with {needle!r} within {seconds} s")


def _closed_with(ws: ClientConnection, seconds: float = 5) -> int | None:
    try:
        while True:
            ws.recv(timeout=seconds)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None
    except TimeoutError:
        return None


def test_a_booking_appears_on_the_open_calendar_and_not_on_the_other_tenants(
    live_pages_server, alice, bob
):
    with (
        _open(live_pages_server, alice.manager, CALENDAR) as mine,
        _open(live_pages_server, bob.manager, CALENDAR) as theirs,
    ):
        # Joining renders the page once: what changed between its load and its connection.
        assert "Alice Villa" in _pushes(mine, 3)[0]["calendar"]
        assert "Alice Villa" not in _pushes(theirs, 3)[0]["calendar"]

        booking = book_stay(alice, timezone.localdate() + timedelta(days=2))
        bar = reverse("admin:bookings_booking_change", args=[booking.pk])
        assert _until(mine, bar, 2.5) <= 2.5
        block = block_create(
            tenant=alice.tenant,
            property=alice.property,
            start=timezone.localdate() + timedelta(days=6),
            end=timezone.localdate() + timedelta(days=8),
            label="Owner stay",
        )
        assert _until(mine, reverse("admin:bookings_block_change", args=[block.pk]), 2.5)

        # Bob's open calendar got nothing: Alice's notices do not concern his page.
        assert _pushes(theirs, 1.5) == []


def test_a_home_calendar_follows_its_own_home_only(live_pages_server, live_worker, alice):
    from tests.factories import PropertyFactory

    cottage = PropertyFactory.create(tenant=alice.tenant, name="Alice Cottage", slug="cottage")
    path = reverse("admin:bookings_property_calendar", args=[alice.property.pk])
    with _open(live_pages_server, alice.manager, path) as page:
        assert "pms-calendar" in _pushes(page, 3)[0]["calendar"]
        booking_create(
            tenant=alice.tenant,
            property=cottage,
            guest=alice.guest,
            check_in=timezone.localdate() + timedelta(days=3),
            check_out=timezone.localdate() + timedelta(days=5),
        )
        assert _pushes(page, 1.5) == []  # the cottage's booking is not the villa's page's
        book_stay(alice, timezone.localdate() + timedelta(days=1))
        # The calendar handler (on the worker) writes the nights; its notice follows.
        assert _until(page, 'data-status="booked"', 5)


def test_a_changed_membership_is_checked_again_on_reconnect(live_pages_server, alice):
    page = _open(live_pages_server, alice.manager, CALENDAR)
    _pushes(page, 2)
    Membership.objects.filter(user=alice.manager, tenant=alice.tenant).delete()
    assert _closed_with(page) == 4001  # "check again"
    again = _open(live_pages_server, alice.manager, CALENDAR)
    assert _closed_with(again) == 4003  # no longer shown: the calendar needs a role


def test_only_signed_in_staff_on_our_pages_from_our_origin(live_pages_server, alice):
    assert _closed_with(_open(live_pages_server, None, CALENDAR)) == 4401
    assert _closed_with(_open(live_pages_server, alice.manager, "/admin/password_change/")) == 4404
    assert _closed_with(_open(live_pages_server, alice.manager, "/nowhere/")) == 4404
    with pytest.raises(InvalidStatus):
        _open(live_pages_server, alice.manager, CALENDAR, origin="http://evil.example")


def test_the_failed_task_list_shows_a_new_failure_to_its_tenant_only(
    live_pages_server, live_worker, alice, bob
):
    path = reverse("admin:pms_failedtask_changelist")
    with (
        _open(live_pages_server, alice.manager, path) as mine,
        _open(live_pages_server, bob.manager, path) as theirs,
    ):
        _pushes(mine, 2), _pushes(theirs, 2)
        event = emit_probe(alice.tenant, mode="permanent")  # the worker's handler fails
        redis_client().set(control_key("fault", event.id), 1, ex=300)  # ... for good
        assert _until(mine, "handlers.tests.effect", 15)
        assert _pushes(theirs, 1.5) == []


def test_a_bookings_story_follows_its_events(live_pages_server, live_worker, alice):
    booking = book_stay(alice, timezone.localdate() + timedelta(days=20))
    path = reverse("admin:bookings_booking_change", args=[booking.pk])
    with _open(live_pages_server, alice.manager, path) as page:
        assert "booking.created" in _pushes(page, 3)[0]["story"]
        booking_cancel(booking=booking, reason="plans changed")
        assert _until(page, "booking.cancelled", 2.5)


def test_the_queue_health_page_shows_a_resolved_failure(live_pages_server, superuser, alice):
    now = timezone.now()
    failed = FailedTask.objects.create(
        task_id="live-qh",
        task_name="handlers.tests.effect",
        queue="bookings",
        args=[1],
        tenant=alice.tenant,
        exception_class="pms.pipeline.errors.PermanentError",
        exception_message="broke",
        first_failed_at=now,
        last_failed_at=now,
    )
    path = reverse("admin:pms_queuesample_changelist")
    with _open(live_pages_server, superuser, path) as page:
        first = _pushes(page, 3)[0]["queue-health"]
        assert re.search(r'id="qh-failed">\s*Open failed tasks<strong><a [^>]*>1</a>', first)
        failed_task_resolve(failed_task=failed, user=superuser, note="fixed by hand")
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            html = "".join(p.get("queue-health", "") for p in _pushes(page, 0.5))
            if re.search(r'id="qh-failed">\s*Open failed tasks<strong><a [^>]*>0</a>', html):
                return
        raise AssertionError("the queue-health page still shows the open failure")


def test_a_page_opened_beside_others_with_the_same_rights_gets_the_page_at_once(
    live_pages_server, alice
):
    colleague = UserFactory.create(username="alice-manager-2")
    membership_grant(user=colleague, tenant=alice.tenant, role=Role.MANAGER)
    with _open(live_pages_server, alice.manager, CALENDAR) as first:
        _pushes(first, 2)
        with _open(live_pages_server, colleague, CALENDAR) as second:
            # One render serves both; the second page still gets it on joining.
            assert "Alice Villa" in _pushes(second, 1)[0]["calendar"]


def test_one_viewer_may_keep_only_so_many_pages_live(live_pages_server, alice):
    pages = [_open(live_pages_server, alice.manager, CALENDAR, f"q={n}") for n in range(5)]
    try:
        for page in pages:
            assert _pushes(page, 2)  # each joined (LIVE_MAX_PAGES_PER_USER=5 here)
        assert _closed_with(_open(live_pages_server, alice.manager, CALENDAR, "q=6")) == 4029
        pages.pop().close()  # one closed: room for another, once the server has seen it
        pages.append(
            wait_until(
                lambda: _joined(_open(live_pages_server, alice.manager, CALENDAR, "q=7")),
                10,
                what="a page to fit again",
            )
        )
    finally:
        for page in pages:
            page.close()


def _joined(page: ClientConnection) -> ClientConnection | None:
    if _pushes(page, 1):
        return page
    page.close()
    return None


def test_rights_changed_without_a_signal_act_at_the_next_render(live_pages_server, alice):
    colleague = UserFactory.create(username="alice-manager-2")
    membership_grant(user=colleague, tenant=alice.tenant, role=Role.MANAGER)
    with (
        _open(live_pages_server, alice.manager, CALENDAR) as mine,
        _open(live_pages_server, colleague, CALENDAR) as theirs,
    ):
        _pushes(mine, 2), _pushes(theirs, 2)
        # A queryset update sends no signal, so no "check again" notice: the render that
        # the next booking causes reads every member's rights first.
        Membership.objects.filter(user=colleague).update(role=Role.CLEANER)
        booking = book_stay(alice, timezone.localdate() + timedelta(days=4))
        assert _closed_with(theirs) == 4001
        assert _until(mine, reverse("admin:bookings_booking_change", args=[booking.pk]), 2.5)


def test_a_cleaner_and_a_manager_of_one_tenant_each_get_their_own_dashboard(
    live_pages_server, alice
):
    cleaner = UserFactory.create(username="alice-cleaner")
    membership_grant(user=cleaner, tenant=alice.tenant, role=Role.CLEANER)
    with (
        _open(live_pages_server, alice.manager, "/admin/") as manager,
        _open(live_pages_server, cleaner, "/admin/") as theirs,
    ):
        assert 'id="panel-arrivals"' in _pushes(manager, 3)[0]["dashboard"]
        assert 'id="panel-arrivals"' not in _pushes(theirs, 3)[0]["dashboard"]
        book_stay(alice, timezone.localdate())
        assert _until(manager, alice.guest.name, 2.5)
        assert all(
            alice.guest.name not in html for p in _pushes(theirs, 1.5) for html in p.values()
        )


def test_what_a_page_sends_besides_a_ping_is_ignored_not_an_error(live_pages_server, alice):
    with _open(live_pages_server, alice.manager, CALENDAR) as page:
        _pushes(page, 2)
        for junk in ("not json", "[1, 2]", '{"ping": ' + "1" * 500 + "}", b"\x00\xff"):
            page.send(junk)
        page.send('{"ping": true}')
        assert json.loads(page.recv(timeout=5)) == {"pong": True}  # still open, still answering
