"""Generated isolation matrix: every admin page, autocomplete and guest endpoint, every role.

Tenant A ("Zanzibar") gets a row of every tenant-owned model. Each role of tenant B
then visits every admin changelist, add form, change/delete/history page of each of
A's rows, every autocomplete, the custom views, runs every action on A's rows, and
calls every token endpoint with A's booking references. B must never see A: a
403/404, or a page with none of A's names, references or links. A model added to
the admin without tenant scoping fails here before it ships.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib import admin
from django.db import transaction
from django.urls import get_resolver, reverse
from rest_framework.test import APIClient

from bookings.services import booking_create, guest_token_issue
from tenants.choices import Role
from tenants.scoping import TenantScopedAdminMixin, is_tenant_owned
from tests.factories import GuestFactory, PropertyFactory, TenantFactory, UserFactory
from tests.support.world import build_world

MARKER = "Zanzibar"

# Platform-level models: no tenant column; no tenant role may see them (operators only).
GLOBAL_MODELS = {
    "auth.group",
    "auth.user",
    # django-axes login attempts: platform-level, superusers only.
    "axes.accessattempt",
    "axes.accessfailurelog",
    "axes.accesslog",
    "tenants.tenant",
    "django_celery_beat.clockedschedule",
    "django_celery_beat.crontabschedule",
    "django_celery_beat.intervalschedule",
    "django_celery_beat.periodictask",
    "django_celery_beat.solarschedule",
    "django_celery_results.groupresult",
    "django_celery_results.taskresult",
    "pms.alertincident",
    "pms.alertrule",
    "pms.queuesample",
}
# API routes by what identifies the object; a new kind of route must be classified here.
# Property details, availability and quotes are public; so is a tenant's search (by slug),
# which tests/bookings/test_property_search.py checks shows nothing of another tenant.
PUBLIC_API_KWARGS = {"public_id", "slug"}
TOKEN_API_KWARGS = {"reference"}


def _label(model: Any) -> str:
    return model._meta.label_lower


def _build_world() -> dict[str, Any]:
    tenant_a = TenantFactory.create(slug="zanzibar", name=f"{MARKER} Holidays")
    data = build_world(tenant_a, MARKER)
    tenant_b = TenantFactory.create(slug="bob", name="Bob Rentals")
    users = {}
    for role in Role:
        user = UserFactory.create(username=f"bob-{role}", is_staff=True)
        from tenants.services import membership_grant

        membership_grant(user=user, tenant=tenant_b, role=role)
        users[role] = user
    prop_b = PropertyFactory.create(tenant=tenant_b, name="Bob Villa", slug="bob-villa")
    guest_b = GuestFactory.create(tenant=tenant_b, name="Bob Guest")
    booking_b = booking_create(
        tenant=tenant_b,
        property=prop_b,
        guest=guest_b,
        check_in=data["bookings"][0].check_in,
        check_out=data["bookings"][0].check_out,
    )
    secrets = [MARKER.lower(), *(b.reference for b in data["bookings"])]
    return {
        "a": tenant_a,
        "b": tenant_b,
        "users": users,
        "booking_b": booking_b,
        "secrets": secrets,
        **data,
    }


@pytest.fixture(scope="module")
def _module_world(django_db_setup: Any, django_db_blocker: Any) -> Iterator[dict[str, Any]]:
    # Built once, as in test_role_matrix: each test runs in a savepoint of this
    # transaction (pytest-django's TestCase atomics nest) and is rolled back alone;
    # the whole world is rolled back at the end of the module.
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            yield _build_world()
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


@pytest.fixture
def world(_module_world: dict[str, Any], db: Any) -> dict[str, Any]:
    return _module_world


def _leaks(body: str, world: dict[str, Any], a_links: list[str]) -> list[str]:
    lowered = body.lower()
    found = [secret for secret in world["secrets"] if secret.lower() in lowered]
    found += [link for link in a_links if link in body]
    return found


def _a_rows(model: Any, tenant: Any) -> list[Any]:
    return list(model._default_manager.filter(tenant=tenant)[:20])


def _change_links(world: dict[str, Any]) -> list[str]:
    links = []
    for model in admin.site._registry:
        if is_tenant_owned(model):
            info = (model._meta.app_label, model._meta.model_name)
            links += [
                f"/admin/{info[0]}/{info[1]}/{row.pk}/change/" for row in _a_rows(model, world["a"])
            ]
    return links


def test_every_admin_model_is_tenant_scoped_or_platform_level(db):
    problems = []
    for model, model_admin in admin.site._registry.items():
        label = _label(model)
        if label in GLOBAL_MODELS:
            continue
        if not is_tenant_owned(model):
            problems.append(f"{label}: no tenant FK and not declared platform-level")
        elif not isinstance(model_admin, TenantScopedAdminMixin):
            problems.append(f"{label}: admin is not a TenantScopedAdmin")
    assert not problems, problems


def test_tenant_a_has_a_row_of_every_tenant_owned_admin_model(world):
    missing = [
        _label(model)
        for model in admin.site._registry
        if is_tenant_owned(model) and not _a_rows(model, world["a"])
    ]
    assert not missing, f"the world builder made no tenant-A row for {missing}"


@pytest.mark.parametrize("role", list(Role))
def test_no_admin_page_shows_tenant_a_to_any_role_of_tenant_b(client, world, role):
    client.force_login(world["users"][role])
    a_links = _change_links(world)
    failures = []
    for model in admin.site._registry:
        info = (model._meta.app_label, model._meta.model_name)
        for url in (f"/admin/{info[0]}/{info[1]}/", f"/admin/{info[0]}/{info[1]}/add/"):
            response = client.get(url)
            if response.status_code == 200:
                leaks = _leaks(response.content.decode(), world, a_links)
                if leaks:
                    failures.append(f"{url}: shows {leaks[:3]}")
            elif response.status_code not in (403, 404):
                failures.append(f"{url}: answered {response.status_code}")
        if not is_tenant_owned(model):
            continue
        for row in _a_rows(model, world["a"]):
            for suffix in ("change", "delete", "history"):
                url = f"/admin/{info[0]}/{info[1]}/{row.pk}/{suffix}/"
                status = client.get(url).status_code
                if status not in (403, 404):
                    failures.append(f"{url}: answered {status}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("role", [Role.OWNER, Role.MANAGER, Role.STAFF])
def test_no_admin_action_touches_tenant_a_rows(client, world, role):
    client.force_login(world["users"][role])
    failures = []
    for model, model_admin in admin.site._registry.items():
        if not is_tenant_owned(model):
            continue
        rows = _a_rows(model, world["a"])
        if not rows:
            continue
        before = list(
            model._default_manager.filter(pk__in=[r.pk for r in rows]).order_by("pk").values()
        )
        info = (model._meta.app_label, model._meta.model_name)
        for action in model_admin.get_actions(_request_for(world["users"][role])):
            response = client.post(
                f"/admin/{info[0]}/{info[1]}/",
                {
                    "action": action,
                    "_selected_action": [r.pk for r in rows],
                    "note": "x",
                    "apply": "1",
                },
            )
            if response.status_code == 200 and _leaks(response.content.decode(), world, []):
                failures.append(f"{info} {action}: page shows tenant A")
        after = list(
            model._default_manager.filter(pk__in=[r.pk for r in rows]).order_by("pk").values()
        )
        if before != after:
            failures.append(f"{info}: an action changed tenant A's rows")
    assert not failures, "\n".join(failures)


def _request_for(user: Any) -> Any:
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    request.user = user
    return request


@pytest.mark.parametrize("role", [Role.OWNER, Role.MANAGER, Role.STAFF])
def test_autocomplete_never_offers_tenant_a(client, world, role):
    client.force_login(world["users"][role])
    failures = []
    for model, model_admin in admin.site._registry.items():
        for field_name in model_admin.get_autocomplete_fields(_request_for(world["users"][role])):
            related = model._meta.get_field(field_name).related_model
            assert related is not None  # an autocomplete field is a relation
            a_ids = (
                {str(r.pk) for r in _a_rows(related, world["a"])}
                if is_tenant_owned(related)
                else set()
            )
            response = client.get(
                "/admin/autocomplete/",
                {
                    "app_label": model._meta.app_label,
                    "model_name": model._meta.model_name,
                    "field_name": field_name,
                    "term": "",
                },
            )
            if response.status_code == 200:
                offered = {item["id"] for item in response.json()["results"]}
                if offered & a_ids or _leaks(response.content.decode(), world, []):
                    failures.append(f"{_label(model)}.{field_name} offers tenant A")
    assert not failures, failures


@pytest.mark.parametrize("role", list(Role))
def test_custom_admin_views_hide_tenant_a(client, world, role):
    client.force_login(world["users"][role])
    prop_a = world["property"]
    calendar = client.get(reverse("admin:bookings_property_calendar", args=[prop_a.pk]))
    assert calendar.status_code in (403, 404)
    statement = client.get(
        reverse("admin:bookings_ledger_statement"), {"property": prop_a.pk, "format": "csv"}
    )
    assert statement.status_code in (200, 403, 404)
    assert not _leaks(statement.content.decode(), world, [])
    for name in ("admin:pms_failedtask_changelist", "admin:index"):
        response = client.get(reverse(name))
        assert response.status_code in (200, 403) and not _leaks(
            response.content.decode(), world, []
        )


def _api_routes() -> list[tuple[str, set[str]]]:
    routes = []

    def walk(patterns: Any, prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if hasattr(pattern, "url_patterns"):
                walk(pattern.url_patterns, route)
            elif route.startswith("api/v1/"):
                routes.append((route, set(pattern.pattern.converters)))

    walk(get_resolver().url_patterns, "")
    return routes


def test_every_guest_endpoint_refuses_another_tenants_booking(world):
    token_b = guest_token_issue(booking=world["booking_b"])
    guest_b = APIClient()
    guest_b.credentials(HTTP_AUTHORIZATION=f"Bearer {token_b}")
    reference_a = world["bookings"][0].reference
    unclassified, failures = [], []
    for route, kwargs in _api_routes():
        if not kwargs or kwargs <= PUBLIC_API_KWARGS:
            continue
        if not kwargs <= TOKEN_API_KWARGS:
            unclassified.append(route)
            continue
        url = "/" + re.sub(r"<(?:\w+:)?reference>", reference_a, route)
        for method in ("get", "post"):
            response = getattr(guest_b, method)(url, {}, format="json")
            if response.status_code not in (404, 405) or reference_a in response.content.decode():
                failures.append(f"{method.upper()} {url}: {response.status_code}")
    assert not unclassified, f"classify these API routes for the isolation matrix: {unclassified}"
    assert not failures, failures
