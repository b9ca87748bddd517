"""The isolation matrix for the pages beyond the admin's model pages: every URL, every role.

Two tenants built alike, A ("Zanzibar") and B ("Yokohama"), each with the rows of
``tests.support.world`` and a busy day (arrivals and departures today, cleaning,
a question, an overdue payment, a conflict, a channel in error, urgent maintenance,
failed tasks, a webhook and emails about a booking). One user per pair of roles
(owner, manager, staff, cleaner or none, in A and in B), as in the role matrix:
a pair with "none" on one side is the *other* tenant's role looking at that
tenant; a pair with a role on each side checks that each right holds only in
its tenant. Each page must answer as the role in each row's tenant allows:

- the admin index dashboard: which panels, and exactly which rows (each row's
  object is of a tenant whose role sees the panel's model; a cleaner only their
  own cleaning, never the unassigned panel); rendered, no name of a tenant the
  user has no role in;
- the calendar of all homes: the homes of the tenants whose role views bookings,
  403 for the others;
- a booking's page and its story: 403/404 for the other tenant, and every line
  of the story links to a row of the booking's tenant the user may see;
- the cleaner's pages: the tasks assigned to the user in the tenants where their
  role may change cleaning tasks, 404 for everything else, start / done / problem
  change nothing; anonymous visitors sign in first;
- the guest pages: a session opened for one booking opens no other, of either
  tenant, and posting to them changes nothing; the language switch;
- the guest API: a booking's token opens no other booking's routes (same tenant or
  not), and a tenant's public search lists no other tenant's homes.

``test_every_url_pattern_is_classified`` lists every URL the project serves with
the test that covers it: a new view fails there until it is classified (and covered).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.test import Client
from django.urls import get_resolver, resolve, reverse
from django.utils import timezone
from rest_framework.test import APIClient

from automation import dashboard as automation_dashboard
from automation.models import CleaningTask, MaintenanceRequest
from bookings import dashboard as bookings_dashboard
from bookings.choices import BookingStatus
from bookings.models import Booking, GuestAccessToken, GuestMessage, Payment, Refund
from bookings.services import booking_create, guest_token_issue
from channelsync import dashboard as channelsync_dashboard
from channelsync.models import WebhookDelivery, WebhookSubscription
from pms import dashboard as pms_dashboard
from pms.dashboard import _PANELS, dashboard_panels
from pms.models import DomainEvent, FailedTask, Property
from tenants.choices import Role
from tenants.models import Tenant
from tenants.services import membership_grant, membership_revoke
from tests.factories import PropertyFactory, UserFactory
from tests.pms.test_dashboard import _day
from tests.support.world import build_world, run_pending_deliveries
from tests.tenants.test_role_matrix import (
    PAIRS,
    _pair_id,
    _request,
    call,
    role_grants,
)

MARKERS = {"a": "Zanzibar", "b": "Yokohama"}


@dataclass
class Side:
    """One tenant and what identifies it to a person reading a page."""

    tenant: Tenant
    marker: str
    bookings: list[Booking]  # the world's kept and cancelled ones, then the busy day's
    tasks: list[CleaningTask]  # three: the pair user's, another cleaner's, nobody's
    tokens: dict[int, str] = field(default_factory=dict)  # booking pk -> raw guest token

    @property
    def secrets(self) -> list[str]:
        return [self.marker.lower(), *(b.reference.lower() for b in self.bookings)]

    def leaks(self, body: str) -> list[str]:
        lowered = body.lower()
        return [secret for secret in self.secrets if secret in lowered]


@dataclass
class World:
    sides: dict[int, Side]  # tenant pk -> side
    users: dict[tuple[str | None, str | None], Any]
    other_cleaner: Any
    superuser: Any

    @property
    def a(self) -> Side:
        return next(iter(self.sides.values()))

    @property
    def b(self) -> Side:
        return list(self.sides.values())[1]

    def roles(self, pair: tuple[str | None, str | None]) -> dict[int, str | None]:
        return {self.a.tenant.pk: pair[0], self.b.tenant.pk: pair[1]}

    def strangers(self, pair: tuple[str | None, str | None]) -> list[Side]:
        """The sides where the pair's user has no role: nothing of theirs may show."""
        return [side for t, side in self.sides.items() if self.roles(pair)[t] is None]


def _busy_side(slug: str, marker: str) -> Side:
    tenant = Tenant.objects.create(slug=slug, name=f"{marker} Holidays")
    data = build_world(tenant, marker)
    for index in range(2):  # two more homes, named so a page showing them is caught
        PropertyFactory.create(
            tenant=tenant, name=f"{marker} Loft {index}", slug=f"{slug}-loft-{index}"
        )
    homes = list(Property.objects.filter(tenant=tenant).order_by("pk"))
    made = _day(SimpleNamespace(tenant=tenant, property=homes[0], guest=data["guest"]), 1)
    for prop in homes[1:]:
        made += _day(SimpleNamespace(tenant=tenant, property=prop, guest=data["guest"]), 1)
    homes[2].booking_mode = "request"
    homes[2].save(update_fields=["booking_mode"])
    asked = timezone.localdate() + timedelta(days=5)
    made.append(
        (
            booking_create(
                tenant=tenant,
                property=homes[2],
                guest=data["guest"],
                check_in=asked,
                check_out=asked + timedelta(days=2),
                status=BookingStatus.REQUESTED,
            ),
        )
    )
    run_pending_deliveries()  # confirmations and other emails about the busy day's stays
    arriving = made[0][1]
    _story_links(tenant, marker, arriving)
    tasks = list(
        CleaningTask.objects.filter(tenant=tenant, scheduled_for=timezone.localdate()).order_by(
            "pk"
        )
    )
    assert len(tasks) >= 3, f"{marker}: the busy day made {len(tasks)} cleaning tasks"
    bookings = [*data["bookings"], *(b for pair in made for b in pair)]
    return Side(tenant=tenant, marker=marker, bookings=bookings, tasks=tasks[:3])


def _story_links(tenant: Tenant, marker: str, booking: Booking) -> None:
    """A webhook delivery and a failed task caused by one of ``booking``'s events."""
    event = DomainEvent.objects.filter(
        tenant=tenant, aggregate_type="booking", aggregate_id=str(booking.pk)
    ).first()
    assert event is not None
    subscription = WebhookSubscription.objects.create(
        tenant=tenant, url=f"https://hooks.{marker.lower()}.test/pms"
    )
    now = timezone.now()
    WebhookDelivery.objects.create(
        tenant=tenant,
        subscription=subscription,
        event_id=event.pk,
        event_type=event.event_type,
        payload={},
        next_attempt_at=now,
    )
    FailedTask.objects.create(
        task_id=f"{marker}-story-{uuid.uuid4()}",
        task_name="handlers.bookings.calendar",
        queue="bookings",
        tenant=tenant,
        event_id=event.pk,
        exception_class="pms.pipeline.errors.PermanentError",
        exception_message=f"{marker} story failure",
        first_failed_at=now,
        last_failed_at=now,
    )


def _build() -> World:
    a = _busy_side("zanzibar", MARKERS["a"])
    b = _busy_side("yokohama", MARKERS["b"])
    users = {}
    for pair in PAIRS:
        user = UserFactory.create(username=f"iso-{_pair_id(pair)}", is_staff=True)
        for side, role in ((a, pair[0]), (b, pair[1])):
            if role is not None:
                membership_grant(user=user, tenant=side.tenant, role=role)
        users[pair] = user
    other = UserFactory.create(username="iso-other-cleaner", is_staff=True)
    for side in (a, b):
        membership_grant(user=other, tenant=side.tenant, role=Role.CLEANER)
        side.tokens = {booking.pk: guest_token_issue(booking=booking) for booking in side.bookings}
    superuser = get_user_model().objects.create_superuser("iso-root", "root@example.test", "x")
    return World(
        sides={a.tenant.pk: a, b.tenant.pk: b},
        users=users,
        other_cleaner=other,
        superuser=superuser,
    )


@pytest.fixture(scope="module")
def _module_world(django_db_setup: Any, django_db_blocker: Any) -> Iterator[World]:
    # Built once, as in the role matrix: each test runs in a savepoint rolled back alone.
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            yield _build()
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


@pytest.fixture
def world(_module_world: World, db: Any) -> World:
    return _module_world


@pytest.fixture
def user(world: World, request: Any) -> Any:
    """The pair's user; in each tenant, task 0 is theirs, task 1 another cleaner's, task 2 nobody's."""
    pair = request.node.callspec.params["pair"]
    user = world.users[pair]
    for side in world.sides.values():
        for task, assignee in zip(side.tasks, (user, world.other_cleaner, None), strict=True):
            CleaningTask.objects.filter(pk=task.pk).update(assignee=assignee)
    return user


def _admin_object(url: str) -> Any:
    """The row an admin change page's URL shows."""
    match = resolve(urlsplit(url).path)
    for model in admin.site._registry:
        if match.url_name == f"{model._meta.app_label}_{model._meta.model_name}_change":
            return model._base_manager.get(pk=match.kwargs["object_id"])
    raise AssertionError(f"{url} is not an admin change page")


def _may_view(user_pk: int, obj: models.Model) -> bool:
    request = _request(user_pk, "get", "/admin/")
    return admin.site._registry[type(obj)].has_view_permission(request, obj)


def _may_change_cleaning(role: str | None) -> bool:
    return role_grants(role, "automation.change_cleaningtask")


# --- the dashboard -------------------------------------------------------------------

# Each panel and the permission a role needs in a row's tenant to see it there. A panel
# added without a line here fails test_every_dashboard_panel_is_classified.
PANEL_PERMS = {
    "requests": "bookings.view_booking",
    "arrivals": "bookings.view_booking",
    "departures": "bookings.view_booking",
    "turnovers": "automation.view_cleaningtask",
    "unassigned_cleaning": "automation.view_cleaningtask",
    "messages": "bookings.view_guestmessage",
    "overdue_payments": "bookings.view_payment",
    "maintenance": "automation.view_maintenancerequest",
    "conflicts": "channelsync.view_conflict",
    "channels": "channelsync.view_channel",
    "failed_tasks": "pms.view_failedtask",
}


def _panel_tenants(key: str, roles: dict[int, str | None]) -> set[int]:
    """The tenants whose rows panel ``key`` may show (a cleaner assigns nothing)."""
    tenants = {t for t, role in roles.items() if role_grants(role, PANEL_PERMS[key])}
    if key == "unassigned_cleaning":
        tenants = {t for t in tenants if roles[t] != Role.CLEANER}
    return tenants


def _panel_objects(user_pk: int) -> dict[str, tuple[int, list[Any]]]:
    request = _request(user_pk, "get", "/admin/")
    return {
        panel.key: (panel.count, [_admin_object(row.url) for row in panel.rows])
        for panel in dashboard_panels(request)
    }


def test_every_dashboard_panel_is_classified():
    assert set(_PANELS) == set(PANEL_PERMS), "say in PANEL_PERMS what each panel needs"


@pytest.mark.parametrize("pair", PAIRS, ids=_pair_id)
def test_the_dashboard_shows_each_tenants_rows_only_as_its_role_allows(
    world, user, pair, monkeypatch
):
    # Every row, none cut off at a panel's eight: the rows are what is compared.
    for module in (pms_dashboard, bookings_dashboard, automation_dashboard, channelsync_dashboard):
        monkeypatch.setattr(module, "ROWS_PER_PANEL", 1000)
    roles = world.roles(pair)
    everything = _panel_objects(world.superuser.pk)
    for key, (count, objects) in everything.items():
        # The superuser sees every row of both tenants: the reference.
        assert count == len(objects), key
        assert {o.tenant_id for o in objects} == set(world.sides), (key, objects)
    shown = _panel_objects(user.pk)
    failures = []
    for key in PANEL_PERMS:
        tenants = _panel_tenants(key, roles)
        if not tenants:
            if key in shown:
                failures.append(f"{key}: shown, but no role of the user may see it")
            continue
        if key not in shown:
            failures.append(f"{key}: missing, expected the rows of tenants {sorted(tenants)}")
            continue
        expected = [
            obj
            for obj in everything[key][1]
            if obj.tenant_id in tenants
            and not (
                isinstance(obj, CleaningTask)
                and roles[obj.tenant_id] == Role.CLEANER
                and obj.assignee_id != user.pk
            )
        ]
        count, objects = shown[key]
        if {(type(o), o.pk) for o in objects} != {(type(o), o.pk) for o in expected}:
            failures.append(
                f"{key}: shows {[(o.tenant_id, o.pk) for o in objects]}, "
                f"expected {[(o.tenant_id, o.pk) for o in expected]}"
            )
        if count != len(expected):
            failures.append(f"{key}: counts {count}, expected {len(expected)}")
    # Rendered: nothing of a tenant where the user has no role, anywhere on the page.
    client = Client()
    client.force_login(user)
    page = client.get("/admin/")
    if page.status_code != 200:
        failures.append(f"GET /admin/: {page.status_code}")
    for side in world.strangers(pair):
        if leaks := side.leaks(page.content.decode()):
            failures.append(f"GET /admin/ shows {side.marker}'s {leaks[:3]}")
    assert not failures, "\n".join(failures)


# --- the calendar of all homes -------------------------------------------------------


@pytest.mark.parametrize("pair", PAIRS, ids=_pair_id)
def test_the_calendar_of_all_homes_shows_the_homes_the_role_books(world, user, pair):
    roles = world.roles(pair)
    url = reverse("admin:bookings_multi_calendar")
    tenants = {t for t, role in roles.items() if role_grants(role, "bookings.view_booking")}
    failures = []
    for query in ({}, {"q": MARKERS["a"]}, {"q": MARKERS["b"]}, {"days": "35", "page": "2"}):
        answer = call(user.pk, "get", url, query)
        if not tenants:
            if answer.status != 403:
                failures.append(f"GET {url} {query}: {answer.status}, expected 403")
            continue
        if answer.status != 200:
            failures.append(f"GET {url} {query}: {answer.status}, expected 200")
            continue
        rows = answer.context["rows"]
        homes = {row.property.tenant_id for row in rows}
        bookings = {bar.object_id for row in rows for bar in row.bars if bar.kind == "booking"}
        outside = Booking.objects.filter(pk__in=bookings).exclude(tenant_id__in=tenants)
        if not homes <= tenants or outside.exists():
            failures.append(f"GET {url} {query}: homes of {homes}, expected within {tenants}")
        if query == {} and (homes != tenants or not bookings):
            failures.append(f"GET {url}: homes of tenants {homes}, expected {tenants} with stays")
    client = Client()
    client.force_login(user)
    page = client.get(url)
    for side in world.strangers(pair):
        if page.status_code == 200 and (leaks := side.leaks(page.content.decode())):
            failures.append(f"GET {url} shows {side.marker}'s {leaks[:3]}")
    assert not failures, "\n".join(failures)


# --- a booking's page and its story ----------------------------------------------------


def _story_bookings(world: World) -> list[Booking]:
    # Each tenant's first busy-day arrival: its events caused emails, a webhook, a failure.
    return [side.bookings[3] for side in world.sides.values()]


def test_the_story_has_emails_a_webhook_and_a_failed_task_to_check(world):
    for booking in _story_bookings(world):
        answer = call(world.superuser.pk, "get", f"/admin/bookings/booking/{booking.pk}/change/")
        kinds = {type(_admin_object(line.url)) for line in answer.context["story"] if line.url}
        assert {WebhookDelivery, FailedTask} <= kinds and len(kinds) >= 3, kinds


@pytest.mark.parametrize("pair", PAIRS, ids=_pair_id)
def test_a_bookings_story_shows_only_its_tenants_rows_the_role_may_see(world, user, pair):
    roles = world.roles(pair)
    failures = []
    for booking in _story_bookings(world):
        url = f"/admin/bookings/booking/{booking.pk}/change/"
        answer = call(user.pk, "get", url)
        if not role_grants(roles[booking.tenant_id], "bookings.view_booking"):
            if answer.status not in (403, 404) or "story" in answer.context:
                failures.append(f"GET {url}: {answer.status}, expected 403/404 and no story")
            continue
        if answer.status != 200:
            failures.append(f"GET {url}: {answer.status}, expected 200")
            continue
        others = [side for t, side in world.sides.items() if t != booking.tenant_id]
        for line in answer.context["story"]:
            text = f"{line.title} {line.detail} {line.outcome}"
            for side in others:
                if leaks := side.leaks(text):
                    failures.append(f"{url}: story line {line.title!r} shows {leaks}")
            if not line.url:
                continue
            obj = _admin_object(line.url)
            if obj.tenant_id != booking.tenant_id:
                failures.append(f"{url}: story links {line.url}, of another tenant")
            elif not _may_view(user.pk, obj):
                failures.append(f"{url}: story links {line.url}, which the role may not see")
    # Rendered, as the role of one tenant only: nothing of the other in the page.
    if None in pair:
        client = Client()
        client.force_login(user)
        for booking in _story_bookings(world):
            page = client.get(f"/admin/bookings/booking/{booking.pk}/change/")
            for side in world.strangers(pair):
                if page.status_code == 200 and (leaks := side.leaks(page.content.decode())):
                    failures.append(f"booking {booking.pk} page shows {side.marker}'s {leaks[:3]}")
    assert not failures, "\n".join(failures)


# --- the cleaner's pages -------------------------------------------------------------


def _task_state(world: World) -> list[tuple[Any, ...]]:
    tasks = [t.pk for side in world.sides.values() for t in side.tasks]
    return [
        *CleaningTask.objects.filter(pk__in=tasks)
        .order_by("pk")
        .values_list("pk", "status", "notes", "started_at", "done_at"),
        ("maintenance", MaintenanceRequest.objects.count()),
    ]


@pytest.mark.parametrize("pair", PAIRS, ids=_pair_id)
def test_the_cleaners_pages_open_only_the_users_tasks_where_their_role_cleans(world, user, pair):
    roles = world.roles(pair)
    client = Client()
    client.force_login(user)
    mine = {side.tasks[0].pk for t, side in world.sides.items() if _may_change_cleaning(roles[t])}
    failures = []
    today = client.get("/clean/")
    listed = {task.pk for task in today.context["tasks"]} if today.status_code == 200 else set()
    if today.status_code != 200 or listed != mine:
        failures.append(f"GET /clean/: {today.status_code}, lists {listed}, expected {mine}")
    for t, side in world.sides.items():
        if not _may_change_cleaning(roles[t]) and (leaks := side.leaks(today.content.decode())):
            failures.append(f"GET /clean/ shows {side.marker}'s {leaks[:3]}")
    before = _task_state(world)
    for side in world.sides.values():
        for task in side.tasks:
            if task.pk in mine:
                status = client.get(f"/clean/{task.pk}/").status_code
                if status != 200:
                    failures.append(f"GET /clean/{task.pk}/ (theirs): {status}, expected 200")
                continue
            for method, url, data in (
                ("get", f"/clean/{task.pk}/", {}),
                ("post", f"/clean/{task.pk}/", {"notes": "mine now"}),
                ("post", f"/clean/{task.pk}/start/", {}),
                ("post", f"/clean/{task.pk}/done/", {}),
                ("post", f"/clean/{task.pk}/problem/", {"title": "Leak", "description": "x"}),
            ):
                response = getattr(client, method)(url, data)
                if response.status_code != 404 or side.leaks(response.content.decode()):
                    failures.append(f"{method.upper()} {url}: {response.status_code}, expected 404")
    if _task_state(world) != before:
        failures.append("a refused request changed a task or reported a problem")
    assert not failures, "\n".join(failures)


def test_a_cleaner_removed_from_a_tenant_no_longer_opens_its_tasks(world):
    """The assignment outlives the membership: the pages must follow the membership."""
    side = world.a
    cleaner = UserFactory.create(username="iso-leaving-cleaner", is_staff=True)
    membership_grant(user=cleaner, tenant=side.tenant, role=Role.CLEANER)
    task = side.tasks[0]
    CleaningTask.objects.filter(pk=task.pk).update(assignee=cleaner)
    client = Client()
    client.force_login(cleaner)
    assert client.get(f"/clean/{task.pk}/").status_code == 200
    membership_revoke(user=cleaner, tenant=side.tenant)
    assert [t.pk for t in client.get("/clean/").context["tasks"]] == []
    before = _task_state(world)
    for method, url in (
        ("get", f"/clean/{task.pk}/"),
        ("post", f"/clean/{task.pk}/start/"),
        ("post", f"/clean/{task.pk}/done/"),
        ("post", f"/clean/{task.pk}/problem/"),
    ):
        response = getattr(client, method)(url, {"title": "Leak", "description": "x"})
        assert response.status_code == 404, (method, url, response.status_code)
        assert not side.leaks(response.content.decode())
    assert _task_state(world) == before
    # Demoted to staff (who may only look at cleaning in the admin): no start or done either.
    membership_grant(user=cleaner, tenant=side.tenant, role=Role.STAFF)
    assert client.post(f"/clean/{task.pk}/done/").status_code == 404


@pytest.mark.parametrize("url", ["/clean/", "/clean/1/", "/clean/1/start/", "/clean/1/problem/"])
def test_anonymous_visitors_of_the_cleaners_pages_sign_in_first(world, url):
    for method in ("get", "post"):
        response = getattr(Client(), method)(url)
        assert response.status_code == 302, (method, url, response.status_code)
        assert "login" in response["Location"]


def _guest_state(world: World) -> list[Any]:
    """What a guest's request could change: stays, money, messages, reports, links.

    (Not the whole fingerprint: opening a link notes its own token's ``last_used_at``.)
    """
    tenants = list(world.sides)
    return [
        list(
            Booking.objects.filter(tenant_id__in=tenants)
            .order_by("pk")
            .values_list("pk", "status", "check_in", "check_out", "guests_count", "total")
        ),
        *(
            model._base_manager.filter(tenant_id__in=tenants).count()
            for model in (GuestMessage, MaintenanceRequest, Payment, Refund, DomainEvent)
        ),
        list(
            GuestAccessToken.objects.filter(booking__tenant_id__in=tenants)
            .order_by("pk")
            .values_list("pk", "revoked_at")
        ),
    ]


# --- the guest pages -------------------------------------------------------------------

GUEST_PAGES = ("", "cancel/", "change/", "messages/", "report/")


def _guest_session(side: Side, booking: Booking) -> Client:
    client = Client()
    opened = client.get(f"/stay/{booking.reference}/", {"token": side.tokens[booking.pk]})
    assert opened.status_code == 302
    assert client.get(f"/stay/{booking.reference}/").status_code == 200
    return client


def _guest_leaks(body: str, booking: Booking, path: str) -> list[str]:
    """The target booking's names in ``body`` (its reference only beyond the echoed path)."""
    body = body.replace(path, "")
    found = [
        text
        for text in (booking.reference, booking.guest.name, booking.property.name)
        if text.lower() in body.lower()
    ]
    return found


@pytest.mark.parametrize("opener", ["a", "b"])
def test_a_guest_session_for_one_booking_opens_no_other_of_either_tenant(world, opener):
    side = world.a if opener == "a" else world.b
    opened = side.bookings[3]
    client = _guest_session(side, opened)
    targets = [b for s in world.sides.values() for b in s.bookings if b.pk != opened.pk]
    before = _guest_state(world)
    failures = []
    for target in targets:
        for suffix in GUEST_PAGES:
            path = f"/stay/{target.reference}/{suffix}"
            for method, data in (
                ("get", {}),
                ("post", {"body": "hi", "title": "x", "description": "x", "confirm": "1"}),
            ):
                response = getattr(client, method)(path, data)
                if response.status_code != 403:
                    failures.append(f"{method.upper()} {path}: {response.status_code}")
                elif leaks := _guest_leaks(response.content.decode(), target, path):
                    failures.append(f"{method.upper()} {path} shows {leaks}")
        # The opened booking's token does not open the others either.
        path = f"/stay/{target.reference}/"
        response = client.get(path, {"token": side.tokens[opened.pk]})
        if response.status_code != 403:
            failures.append(f"GET {path}?token=<{opened.reference}'s>: {response.status_code}")
    if _guest_state(world) != before:
        failures.append("a refused guest request changed a tenant's rows")
    # The session still opens its own booking, and only it.
    assert client.get(f"/stay/{opened.reference}/").status_code == 200
    assert not failures, "\n".join(failures)


def test_the_language_switch_shows_nothing_and_opens_nothing(world):
    opened = world.a.bookings[3]
    client = _guest_session(world.a, opened)
    other = world.b.bookings[3]
    for target in (f"/stay/{opened.reference}/", f"/stay/{other.reference}/", "https://evil.test/"):
        response = client.post("/i18n/setlang/", {"language": "de", "next": target})
        assert response.status_code == 302
        assert response["Location"] in (target, "/") and "evil" not in response["Location"]
        assert not world.a.leaks(response.content.decode())
    assert client.get(f"/stay/{other.reference}/").status_code == 403
    page = client.get(f"/stay/{opened.reference}/")
    assert page.status_code == 200 and page["Content-Language"] == "de"
    assert not world.b.leaks(page.content.decode())


# --- the guest API ---------------------------------------------------------------------


def _token_routes() -> list[str]:
    routes = []

    def walk(patterns: Any, prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if hasattr(pattern, "url_patterns"):
                walk(pattern.url_patterns, route)
            elif route.startswith("api/v1/") and set(pattern.pattern.converters) == {"reference"}:
                routes.append(route)

    walk(get_resolver().url_patterns, "")
    return routes


def test_the_token_routes_include_cancel_and_change():
    assert {
        "api/v1/bookings/<str:reference>/cancel/",
        "api/v1/bookings/<str:reference>/change/",
    } <= set(_token_routes())


@pytest.mark.parametrize("opener", ["a", "b"])
def test_a_bookings_token_opens_no_other_bookings_api_routes(world, opener):
    side = world.a if opener == "a" else world.b
    opened = side.bookings[3]
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {side.tokens[opened.pk]}")
    stay = {
        "check_in": opened.check_in.isoformat(),
        "check_out": (opened.check_out + timedelta(days=1)).isoformat(),
        "guests": 1,
    }
    before = _guest_state(world)
    failures = []
    for route in _token_routes():
        own = "/" + route.replace("<str:reference>", opened.reference)
        if api.get(own, stay).status_code in (401, 403, 404):
            failures.append(f"GET {own}: the token does not open its own booking")
        for target in (b for s in world.sides.values() for b in s.bookings if b.pk != opened.pk):
            url = "/" + route.replace("<str:reference>", target.reference)
            for method in ("get", "post"):
                data = stay if method == "get" else {**stay, "expected_total": "1", "body": "x"}
                response = getattr(api, method)(
                    url, data, **({"format": "json"} if method == "post" else {})
                )
                body = response.content.decode()
                if response.status_code not in (404, 405) or target.reference in body:
                    failures.append(f"{method.upper()} {url}: {response.status_code}")
                elif target.guest.name in body or target.property.name in body:
                    failures.append(f"{method.upper()} {url}: shows the booking's names")
    if _guest_state(world) != before:
        failures.append("a refused API call changed a tenant's rows")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("dated", [False, True])
def test_a_tenants_public_search_lists_none_of_another_tenants_homes(world, dated):
    api = APIClient()
    start = timezone.localdate() + timedelta(days=200)
    params = {"check_in": start.isoformat(), "check_out": (start + timedelta(days=2)).isoformat()}
    for side in world.sides.values():
        response = api.get(
            f"/api/v1/tenants/{side.tenant.slug}/properties/", params if dated else {}
        )
        assert response.status_code == 200, response.content
        names = {result["name"] for result in response.json()["results"]}
        own = set(
            Property.objects.filter(tenant=side.tenant, is_active=True).values_list(
                "name", flat=True
            )
        )
        assert names == own, (side.marker, names)
        for other in world.sides.values():
            if other is not side:
                assert not other.leaks(response.content.decode())


# --- every URL the project serves, classified ------------------------------------------

# URL name -> the test that covers it. Admin model pages (changelist, add, change, delete,
# history of every registered model) are generated by tests/tenants/test_isolation_matrix.py
# and test_role_matrix.py; everything else is named here.
COVERED = {
    # The admin's own pages and the custom views.
    "admin:index": "test_the_dashboard_shows_each_tenants_rows_only_as_its_role_allows",
    "admin:bookings_multi_calendar": "test_the_calendar_of_all_homes_shows_the_homes_the_role_books",
    "admin:bookings_property_calendar": "test_role_matrix._check_custom_views",
    "admin:bookings_ledger_statement": "test_role_matrix._check_custom_views",
    "admin:bookings_reports": "test_reports_and_the_answer_view_hide_the_other_tenant",
    "admin:bookings_owner_statement": "test_reports_and_the_answer_view_hide_the_other_tenant",
    "admin:bookings_booking_answer": "test_reports_and_the_answer_view_hide_the_other_tenant",
    "admin:autocomplete": "test_role_matrix._check_autocompletes",
    "admin:app_list": "test_app_lists_hide_the_other_tenant",
    # Django's admin plumbing: no tenant data (view_on_site checks the object's admin).
    "admin:login": "no tenant data",
    "admin:logout": "no tenant data",
    "admin:password_change": "no tenant data",
    "admin:password_change_done": "no tenant data",
    "admin:jsi18n": "no tenant data",
    "admin:view_on_site": "test_reports_and_the_answer_view_hide_the_other_tenant",
    # A platform model's page (auth.user is in GLOBAL_MODELS): superusers only.
    "admin:auth_user_password_change": "test_reports_and_the_answer_view_hide_the_other_tenant",
    # The cleaner's pages.
    "cleaner:today": "test_the_cleaners_pages_open_only_the_users_tasks_where_their_role_cleans",
    "cleaner:task": "test_the_cleaners_pages_open_only_the_users_tasks_where_their_role_cleans",
    "cleaner:move": "test_the_cleaners_pages_open_only_the_users_tasks_where_their_role_cleans",
    "cleaner:problem": "test_the_cleaners_pages_open_only_the_users_tasks_where_their_role_cleans",
    # The guest pages and their language switch.
    "guest:booking": "test_a_guest_session_for_one_booking_opens_no_other_of_either_tenant",
    "guest:cancel": "test_a_guest_session_for_one_booking_opens_no_other_of_either_tenant",
    "guest:change": "test_a_guest_session_for_one_booking_opens_no_other_of_either_tenant",
    "guest:messages": "test_a_guest_session_for_one_booking_opens_no_other_of_either_tenant",
    "guest:report": "test_a_guest_session_for_one_booking_opens_no_other_of_either_tenant",
    "set_language": "test_the_language_switch_shows_nothing_and_opens_nothing",
    # The guest API: by token (reference), public by property id, or a tenant's search.
    "bookings-api:booking": "test_a_bookings_token_opens_no_other_bookings_api_routes",
    "bookings-api:booking-cancel": "test_a_bookings_token_opens_no_other_bookings_api_routes",
    "bookings-api:booking-change": "test_a_bookings_token_opens_no_other_bookings_api_routes",
    "bookings-api:booking-messages": "test_a_bookings_token_opens_no_other_bookings_api_routes",
    "bookings-api:booking-maintenance": "test_a_bookings_token_opens_no_other_bookings_api_routes",
    "bookings-api:property-search": "test_a_tenants_public_search_lists_none_of_another_tenants_homes",
    "bookings-api:property": "public: one active home by its public id",
    "bookings-api:availability": "public: one active home by its public id",
    "bookings-api:quote": "public: one active home by its public id",
    "bookings-api:booking-create": "tests/bookings/test_guest_api.py (a new booking, no token)",
    "api-not-found": "a JSON 404",
    "api-schema": "the OpenAPI schema: no data",
    "api-docs": "the API's documentation page: no data",
    # A channel's export feed, by its secret token (one property's blocked nights).
    "channelsync:ical-export": "tests/channelsync (the token names one channel)",
    # Platform endpoints: no tenant's rows (metrics are restricted to operators).
    "health": "platform",
    "health-live": "platform",
    "prometheus-metrics": "platform, restricted",
}
MODEL_PAGES = ("changelist", "add", "change", "delete", "history")


def _url_names() -> list[tuple[str, str]]:
    names = []

    def walk(patterns: Any, prefix: str, namespaces: list[str]) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if hasattr(pattern, "url_patterns"):
                more = [pattern.namespace] if pattern.namespace else []
                walk(pattern.url_patterns, route, namespaces + more)
            else:
                names.append((":".join([*namespaces, pattern.name or ""]), route))

    walk(get_resolver().url_patterns, "", [])
    return names


def _model_page_names() -> set[str]:
    return {
        f"admin:{model._meta.app_label}_{model._meta.model_name}_{page}"
        for model in admin.site._registry
        for page in MODEL_PAGES
    }


def test_every_url_pattern_is_classified():
    model_pages = _model_page_names()
    unclassified = []
    for name, route in _url_names():
        if name in COVERED or name in model_pages:
            continue
        # The admin's unnamed redirects: <object_id>/ to its change page, the catch-all.
        if name == "admin:" and (route.endswith("<path:object_id>/") or "(?P<url>" in route):
            continue
        unclassified.append(f"{name or '(unnamed)'} {route}")
    assert not unclassified, (
        f"classify these URLs in COVERED, with the test that checks their isolation: {unclassified}"
    )
    stale = set(COVERED) - {name for name, _ in _url_names()}
    assert not stale, f"COVERED names URLs that no longer exist: {stale}"


@pytest.mark.parametrize(
    "pair", [p for p in PAIRS if None in p and p != (None, None)], ids=_pair_id
)
def test_reports_and_the_answer_view_hide_the_other_tenant(world, user, pair):
    client = Client()
    client.force_login(user)
    failures = []
    for stranger in world.strangers(pair):
        prop = Property.objects.filter(tenant=stranger.tenant).order_by("pk")[0]
        booking = stranger.bookings[3]
        queries: list[tuple[str, dict[str, str]]] = [
            (reverse("admin:bookings_reports"), {}),
            (reverse("admin:bookings_reports"), {"format": "csv"}),
            (reverse("admin:bookings_owner_statement"), {"property": str(prop.pk)}),
            (
                reverse("admin:bookings_owner_statement"),
                {"property": str(prop.pk), "format": "csv"},
            ),
        ]
        for url, data in queries:
            response = client.get(url, data)
            if response.status_code not in (200, 403, 404):
                failures.append(f"GET {url} {data}: {response.status_code}")
            elif leaks := stranger.leaks(response.content.decode()):
                failures.append(f"GET {url} {data}: shows {leaks[:3]}")
        answer = reverse("admin:bookings_booking_answer", args=[booking.pk])
        before = Booking.objects.get(pk=booking.pk).status
        for decision in ("accept", "decline"):
            status = client.post(answer, {"decision": decision}).status_code
            if status not in (403, 404):
                failures.append(f"POST {answer} {decision}: {status}")
        if Booking.objects.get(pk=booking.pk).status != before:
            failures.append(f"POST {answer}: changed another tenant's booking")
        password = reverse("admin:auth_user_password_change", args=[world.superuser.pk])
        if client.get(password).status_code not in (403, 404):
            failures.append(f"GET {password}: a tenant role reaches a user's password page")
        content_type = ContentType.objects.get_for_model(Booking).pk
        response = client.get(reverse("admin:view_on_site", args=[content_type, booking.pk]))
        if response.status_code not in (403, 404) and stranger.leaks(response.get("Location", "")):
            failures.append(f"view_on_site of {booking.pk}: {response.status_code}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    "pair", [p for p in PAIRS if None in p and p != (None, None)], ids=_pair_id
)
def test_app_lists_hide_the_other_tenant(world, user, pair):
    client = Client()
    client.force_login(user)
    for app_label in ("pms", "bookings", "automation", "channelsync", "tenants"):
        response = client.get(f"/admin/{app_label}/")
        assert response.status_code in (200, 403, 404), app_label
        for stranger in world.strangers(pair):
            assert not stranger.leaks(response.content.decode()), app_label
