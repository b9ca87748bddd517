"""Generated role matrix: one user holds a role in tenant A and a role in tenant B.

For every pair of roles (owner, manager, staff, cleaner, or none) in A and B, both
tenants built alike with a row of every tenant-owned model, every admin URL must
answer as the role *in that row's tenant* allows (``tenants.roles.ROLE_PERMISSIONS``),
capped by what the admin allows anyone (a superuser's answers): changelists (which
rows), add forms (which tenants and foreign-key choices), change / delete / history
pages of A's and B's rows (read-only or editable, inlines, refused writes), the
calendar and statement views, every autocomplete, and every action, which may
change rows only in the tenants where the role grants the action's permission. A
user who manages A and cleans for B is a cleaner on B's rows.

Speed: the views are resolved from their URLs and called as Django's handler calls
them, with the user read afresh from the database for each call (as
AuthenticationMiddleware does, so nothing is cached across "requests"), and their
TemplateResponses are inspected without rendering: permissions are decided before
any template runs. Actions run in a savepoint that is rolled back, with every
tenant-owned row of A and B fingerprinted before and after. The world is built once
for the module, inside a transaction rolled back at its end.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.messages.storage.cookie import CookieStorage
from django.core.exceptions import PermissionDenied
from django.db import connection, models, transaction
from django.http import Http404
from django.test import RequestFactory
from django.urls import resolve, reverse

from automation.models import CleaningTask
from bookings.models import Booking, LedgerEntry
from pms.models import Property
from tenants.choices import Role
from tenants.models import Membership, Tenant
from tenants.roles import ROLE_EXTRA_PERMISSIONS, ROLE_PERMISSIONS
from tenants.scoping import is_tenant_owned
from tenants.services import membership_grant
from tests.factories import TenantFactory, UserFactory
from tests.support.world import build_world, tenant_owned_models
from tests.tenants.test_isolation_matrix import GLOBAL_MODELS

ROLES: list[str | None] = [Role.OWNER, Role.MANAGER, Role.STAFF, Role.CLEANER, None]
PAIRS = [(in_a, in_b) for in_a in ROLES for in_b in ROLES]
ACTION_DATA = {"note": "matrix", "apply": "1", "post": "yes", "index": "0"}


def _pair_id(pair: tuple[str | None, str | None]) -> str:
    return f"A-{pair[0] or 'none'}-B-{pair[1] or 'none'}"


# --- calling a view the way the handler does, without rendering ------------------------


@dataclass
class Answer:
    status: int
    response: Any = None

    @property
    def context(self) -> dict[str, Any]:
        return getattr(self.response, "context_data", None) or {}


_factory = RequestFactory()


def _request(user_pk: int, method: str, url: str, data: dict[str, Any] | None = None) -> Any:
    request = getattr(_factory, method)(url, data or {})
    # A fresh user object per call: what the session middleware gives each request.
    request.user = get_user_model().objects.get(pk=user_pk)
    request._dont_enforce_csrf_checks = True
    request._messages = CookieStorage(request)
    return request


def call(user_pk: int, method: str, url: str, data: dict[str, Any] | None = None) -> Answer:
    request = _request(user_pk, method, url, data)
    match = resolve(urlsplit(url).path)
    request.resolver_match = match
    try:
        response = match.func(request, *match.args, **match.kwargs)
    except PermissionDenied:
        return Answer(403)
    except Http404:
        return Answer(404)
    return Answer(response.status_code, response)


# --- what the role table says ------------------------------------------------------------


def model_perm(action: str, model: type[models.Model]) -> str:
    return f"{model._meta.app_label}.{action}_{model._meta.model_name}"


def role_grants(role: str | None, perm: str) -> bool:
    """Read straight from the table, independently of the code that enforces it."""
    if role is None:
        return False
    app_label, codename = perm.split(".")
    action, _, model_name = codename.partition("_")
    actions = ROLE_PERMISSIONS[role].get(f"{app_label}.{model_name}", ())
    return action in actions or perm in ROLE_EXTRA_PERMISSIONS[role]


# Action permissions beyond view/add/change/delete, as the admins name them.
ACTION_PERMISSIONS = {"act": "pms.act_on_failedtask"}


def grants(role: str | None, model: type[models.Model], action: str) -> bool:
    """Does ``role`` grant ``action`` on ``model`` ("view" is also granted by "change")?"""
    actions = ("view", "change") if action == "view" else (action,)
    return any(role_grants(role, model_perm(name, model)) for name in actions)


def grants_any(role: str | None, perms: tuple[str, ...]) -> bool:
    return any(role_grants(role, perm) for perm in perms)


def sees(role: str | None, row: models.Model, user: Any) -> bool:
    """A role that may view the model sees its rows; a cleaner sees only their own tasks."""
    if not grants(role, type(row), "view"):
        return False
    if isinstance(row, CleaningTask) and role == Role.CLEANER:
        return row.assignee_id == user.pk
    return True


def tenant_admins() -> list[tuple[type[models.Model], Any]]:
    return [(m, a) for m, a in admin.site._registry.items() if is_tenant_owned(m)]


def _base_url(model: type[models.Model]) -> str:
    return f"/admin/{model._meta.app_label}/{model._meta.model_name}/"


def _rows(model: type[models.Model], tenant: Tenant) -> list[models.Model]:
    return list(model._base_manager.filter(tenant=tenant).order_by("pk"))


# --- fingerprints and rolled-back actions ------------------------------------------------


def _fingerprint_sql() -> tuple[str, int]:
    parts = []
    for model in tenant_owned_models():
        table = connection.ops.quote_name(model._meta.db_table)
        tenant_field = model._meta.get_field("tenant")
        assert isinstance(tenant_field, models.ForeignKey) and tenant_field.column is not None
        column = connection.ops.quote_name(tenant_field.column)
        parts.append(
            f"SELECT '{model._meta.label}', t.{column}, count(*), sum(hashtext(t::text)::bigint)"
            f" FROM {table} t WHERE t.{column} = ANY(%s) GROUP BY t.{column}"
        )
    return " UNION ALL ".join(parts), len(parts)


def fingerprints(tenant_ids: list[int]) -> dict[int, int]:
    """One hash per tenant over every tenant-owned row it has (one query, in PostgreSQL)."""
    sql, count = _fingerprint_sql()
    with connection.cursor() as cursor:
        cursor.execute(sql, [tenant_ids] * count)
        rows = cursor.fetchall()
    return {
        tenant_id: hash(tuple(sorted(row for row in rows if row[1] == tenant_id)))
        for tenant_id in tenant_ids
    }


class _Rollback(Exception):
    pass


def run_action_rolled_back(
    user_pk: int,
    model: type[models.Model],
    action: str,
    selected: list[Any],
    tenant_ids: list[int],
    before: dict[int, int],
) -> tuple[Answer | None, set[int], str]:
    """POST the action, note which tenants' rows changed from ``before``, roll it all back."""
    outcome: dict[str, Any] = {}
    try:
        with transaction.atomic():
            try:
                outcome["answer"] = call(
                    user_pk,
                    "post",
                    _base_url(model),
                    {"action": action, "_selected_action": selected, **ACTION_DATA},
                )
            except Exception as exc:  # a 500: reported, and the savepoint still rolls back
                outcome["error"] = f"raised {type(exc).__name__}: {exc}"
            after = fingerprints(tenant_ids)
            outcome["changed"] = {t for t in tenant_ids if before[t] != after[t]}
            raise _Rollback
    except _Rollback:
        pass
    return outcome.get("answer"), outcome["changed"], outcome.get("error", "")


# --- the world -----------------------------------------------------------------------


@dataclass
class Matrix:
    a: Tenant
    b: Tenant
    properties: dict[int, Property]
    users: dict[tuple[str | None, str | None], Any]
    superuser: Any
    # (model, action) -> tenants whose rows the superuser's run of it changed.
    action_effects: dict[tuple[type[models.Model], str], set[int]] = field(default_factory=dict)
    # (model, row pk) -> {inline class name: (inline model, superuser may add)}.
    inlines: dict[tuple[type[models.Model], Any], dict[str, tuple[Any, bool]]] = field(
        default_factory=dict
    )

    @property
    def tenant_ids(self) -> list[int]:
        return [self.a.pk, self.b.pk]

    def roles(self, pair: tuple[str | None, str | None]) -> dict[int, str | None]:
        return {self.a.pk: pair[0], self.b.pk: pair[1]}


def _su_request(matrix: Matrix) -> Any:
    return _request(matrix.superuser.pk, "get", "/admin/")


def _inline_answers(answer: Answer) -> dict[str, tuple[Any, bool]]:
    return {
        type(formset.opts).__name__: (formset.opts.model, bool(formset.has_add_permission))
        for formset in answer.context.get("inline_admin_formsets", [])
    }


def _action_perms(model_admin: Any, func: Any) -> tuple[str, ...]:
    """What allows an action: its declared permissions (none declared: "change")."""
    names = tuple(getattr(func, "allowed_permissions", None) or ("change",))
    perms: list[str] = []
    for name in names:
        if name in ACTION_PERMISSIONS:
            perms.append(ACTION_PERMISSIONS[name])
        else:
            perms += [model_perm(name, model_admin.model)]
            if name == "view":
                perms.append(model_perm("change", model_admin.model))
    return tuple(perms)


def _build_matrix() -> Matrix:
    tenant_a = TenantFactory.create(slug="zanzibar", name="Zanzibar Holidays")
    world_a = build_world(tenant_a, "Zanzibar")
    tenant_b = TenantFactory.create(slug="yokohama", name="Yokohama Stays")
    world_b = build_world(tenant_b, "Yokohama")
    users = {}
    for pair in PAIRS:
        user = UserFactory.create(username=f"matrix-{_pair_id(pair)}", is_staff=True)
        for tenant, role in ((tenant_a, pair[0]), (tenant_b, pair[1])):
            if role is not None:
                membership_grant(user=user, tenant=tenant, role=role)
        users[pair] = user
    superuser = get_user_model().objects.create_superuser("matrix-root", "r@example.test", "x")
    matrix = Matrix(
        a=tenant_a,
        b=tenant_b,
        properties={tenant_a.pk: world_a["property"], tenant_b.pk: world_b["property"]},
        users=users,
        superuser=superuser,
    )
    request = _su_request(matrix)
    before = fingerprints(matrix.tenant_ids)
    for model, model_admin in tenant_admins():
        selected = [row.pk for t in (tenant_a, tenant_b) for row in _rows(model, t)]
        for action in model_admin.get_actions(request):
            _, changed, error = run_action_rolled_back(
                superuser.pk, model, action, selected, matrix.tenant_ids, before
            )
            assert not error, f"{model._meta.label} {action} as superuser {error}"
            matrix.action_effects[(model, action)] = changed
        for tenant in (tenant_a,):
            for row in _rows(model, tenant)[:1]:
                page = call(superuser.pk, "get", f"{_base_url(model)}{row.pk}/change/")
                matrix.inlines[(model, row.pk)] = _inline_answers(page)
    return matrix


@pytest.fixture(scope="module")
def matrix(django_db_setup: Any, django_db_blocker: Any) -> Iterator[Matrix]:
    # Built once: each test runs in a savepoint of this transaction (pytest-django's
    # TestCase atomics nest), and the whole world is rolled back at the end.
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            yield _build_matrix()
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


@pytest.fixture
def assigned(matrix: Matrix, db: Any, request: Any) -> Any:
    """The pair's user, with A's cleaning tasks assigned to them and B's to nobody."""
    user = matrix.users[request.node.callspec.params["pair"]]
    CleaningTask.objects.filter(tenant=matrix.a).update(assignee=user)
    CleaningTask.objects.filter(tenant=matrix.b).update(assignee=None)
    return user


# --- the checks ----------------------------------------------------------------------


def _choice_tenants(field_: forms.Field) -> set[int] | None:
    queryset = getattr(field_, "queryset", None)
    if queryset is None:
        return None
    if queryset.model is Tenant:
        return set(queryset.values_list("pk", flat=True))
    if is_tenant_owned(queryset.model):
        return set(queryset.values_list("tenant_id", flat=True).distinct())
    if queryset.model is get_user_model():
        return set(Membership.objects.filter(user__in=queryset).values_list("tenant_id", flat=True))
    return None


def _form_choice_problems(form: Any, allowed: set[int], where: str) -> list[str]:
    """Every tenant-owned, tenant or user choice of ``form`` lies in ``allowed`` tenants."""
    problems = []
    for name, form_field in form.fields.items():
        offered = _choice_tenants(form_field)
        if offered is None:
            continue
        queryset = form_field.queryset
        if queryset.model is get_user_model():
            # A user is offered only if they are a member of an allowed tenant.
            strangers = queryset.exclude(memberships__tenant_id__in=allowed)
            if strangers.exists():
                problems.append(f"{where}: {name} offers {list(strangers[:3])}")
        elif offered - allowed:
            problems.append(f"{where}: {name} offers rows of tenants {sorted(offered - allowed)}")
    return problems


def _check_model(
    matrix: Matrix, user: Any, roles: dict[int, str | None], model: Any, model_admin: Any
) -> list[str]:
    failures: list[str] = []
    base = _base_url(model)
    su = _su_request(matrix)
    rows = {t: _rows(model, Tenant(pk=t)) for t in matrix.tenant_ids}
    may_view_somewhere = any(grants(roles[t], model, "view") for t in matrix.tenant_ids)

    # The changelist: exactly the rows the role in each tenant sees, and its actions.
    answer = call(user.pk, "get", base)
    if not may_view_somewhere:
        if answer.status != 403:
            failures.append(f"GET {base}: {answer.status}, expected 403")
    elif answer.status != 200:
        failures.append(f"GET {base}: {answer.status}, expected 200")
    else:
        shown = set(
            answer.context["cl"]
            .queryset.filter(tenant_id__in=matrix.tenant_ids)
            .values_list("pk", flat=True)
        )
        expected = {
            row.pk
            for t, tenant_rows in rows.items()
            for row in tenant_rows
            if sees(roles[t], row, user)
        }
        if shown != expected:
            failures.append(
                f"GET {base}: lists {sorted(shown - expected)} it must not, "
                f"misses {sorted(expected - shown)}"
            )
        action_form = answer.context.get("action_form")
        offered = (
            {name for name, _ in action_form.fields["action"].choices if name}
            if action_form
            else set()
        )
        expected_actions = {
            name
            for name, (func, _, _) in model_admin.get_actions(su).items()
            if any(
                grants_any(roles[t], _action_perms(model_admin, func)) for t in matrix.tenant_ids
            )
        }
        if offered != expected_actions:
            failures.append(
                f"GET {base}: offers actions {sorted(offered - expected_actions)} it must not, "
                f"misses {sorted(expected_actions - offered)}"
            )

    # The add form: only if some tenant's role may add, and only those tenants' choices.
    add_tenants = {t for t in matrix.tenant_ids if grants(roles[t], model, "add")}
    may_add = model_admin.has_add_permission(su) and bool(add_tenants)
    answer = call(user.pk, "get", f"{base}add/")
    if answer.status != (200 if may_add else 403):
        failures.append(f"GET {base}add/: {answer.status}, expected {200 if may_add else 403}")
    elif may_add:
        form = answer.context["adminform"].form
        if "tenant" in form.fields:
            offered = set(form.fields["tenant"].queryset.values_list("pk", flat=True))
            if offered != add_tenants:
                failures.append(f"GET {base}add/: tenant choices {offered}, expected {add_tenants}")
        failures += _form_choice_problems(form, add_tenants, f"GET {base}add/")

    # A row of A: its pages answer as the role in A allows, whatever the role in B. (B is
    # built like A, so B's rows under the pair (x, y) are A's rows under (y, x): checking
    # A's rows for all 25 pairs covers every role in a row's tenant beside every other.)
    for tenant_id, tenant_rows in rows.items():
        if not tenant_rows or tenant_id != matrix.a.pk:
            continue
        row, role = tenant_rows[0], roles[tenant_id]
        url = f"{base}{row.pk}/"
        visible = model_admin.has_view_permission(su, row) and sees(role, row, user)
        may_change = (
            visible and model_admin.has_change_permission(su, row) and grants(role, model, "change")
        )
        may_delete = (
            visible and model_admin.has_delete_permission(su, row) and grants(role, model, "delete")
        )
        answer = call(user.pk, "get", f"{url}change/")
        if not visible:
            if answer.status not in (403, 404):
                failures.append(f"GET {url}change/: {answer.status}, expected 403/404")
        elif answer.status != 200:
            failures.append(f"GET {url}change/: {answer.status}, expected 200")
        else:
            context = answer.context
            if bool(context["has_change_permission"]) != may_change:
                failures.append(
                    f"GET {url}change/: editable={not may_change}, expected {may_change}"
                )
            if bool(context["has_delete_permission"]) != may_delete:
                failures.append(f"GET {url}change/: delete offered={not may_delete}")
            if may_change:
                failures += _form_choice_problems(
                    context["adminform"].form, {tenant_id}, f"GET {url}change/"
                )
            expected_inlines = {
                name: (inline_model, su_add and grants(role, inline_model, "add"))
                for name, (inline_model, su_add) in matrix.inlines[(model, row.pk)].items()
                if any(grants(role, inline_model, a) for a in ("view", "add", "delete"))
            }
            if _inline_answers(answer) != expected_inlines:
                failures.append(
                    f"GET {url}change/: inlines {_inline_answers(answer)}, expected {expected_inlines}"
                )
        if visible and not may_change:
            status = call(user.pk, "post", f"{url}change/", {}).status
            if status != 403:
                failures.append(f"POST {url}change/: {status}, expected 403")
        answer = call(user.pk, "get", f"{url}delete/")
        expected_delete = (200,) if may_delete else (403,) if visible else (403, 404)
        if answer.status not in expected_delete:
            failures.append(f"GET {url}delete/: {answer.status}, expected {expected_delete}")
        answer = call(user.pk, "get", f"{url}history/")
        expected_history = (200,) if visible else (403, 404)
        if answer.status not in expected_history:
            failures.append(f"GET {url}history/: {answer.status}, expected {expected_history}")
    return failures


def _check_custom_views(matrix: Matrix, user: Any, roles: dict[int, str | None]) -> list[str]:
    failures = []
    for tenant_id, prop in matrix.properties.items():
        url = reverse("admin:bookings_property_calendar", args=[prop.pk])
        expected = 200 if grants(roles[tenant_id], Booking, "view") else 404
        status = call(user.pk, "get", url).status
        if status != expected:
            failures.append(f"GET {url}: {status}, expected {expected}")
    url = reverse("admin:bookings_ledger_statement")
    ledger_tenants = {t for t in matrix.tenant_ids if grants(roles[t], LedgerEntry, "view")}
    for tenant_id, prop in matrix.properties.items():
        answer = call(user.pk, "get", url, {"property": prop.pk})
        if not ledger_tenants:
            if answer.status not in (403, 404):
                failures.append(f"GET {url}?property={prop.pk}: {answer.status}, expected 404")
            continue
        listed = set(
            answer.context["properties"]
            .filter(pk__in=[p.pk for p in matrix.properties.values()])
            .values_list("tenant_id", flat=True)
        )
        selected = answer.context["selected"]
        if listed != ledger_tenants or (selected is not None) != (tenant_id in ledger_tenants):
            failures.append(
                f"GET {url}?property={prop.pk}: lists tenants {listed}, selected {selected}, "
                f"expected {ledger_tenants}"
            )
    return failures


def _check_autocompletes(matrix: Matrix, user: Any, roles: dict[int, str | None]) -> list[str]:
    failures = []
    su = _su_request(matrix)
    for model, model_admin in admin.site._registry.items():
        for field_name in model_admin.get_autocomplete_fields(su):
            related = model._meta.get_field(field_name).related_model
            assert related is not None  # an autocomplete field is a relation
            answer = call(
                user.pk,
                "get",
                "/admin/autocomplete/",
                {
                    "app_label": model._meta.app_label,
                    "model_name": model._meta.model_name,
                    "field_name": field_name,
                    "term": "",
                },
            )
            where = f"autocomplete {model._meta.label}.{field_name}"
            if not is_tenant_owned(related):
                if answer.status != 403:
                    failures.append(f"{where}: {answer.status}, expected 403")
                continue
            # Offered: rows the role may see, in tenants where the asking form may be filled.
            expected = {
                str(row.pk)
                for t in matrix.tenant_ids
                for row in _rows(related, Tenant(pk=t))
                if sees(roles[t], row, user)
                and (grants(roles[t], model, "add") or grants(roles[t], model, "change"))
            }
            if answer.status == 403:
                offered: set[str] = set()
            else:
                offered = {item["id"] for item in json.loads(answer.response.content)["results"]}
                offered &= {
                    str(row.pk) for t in matrix.tenant_ids for row in _rows(related, Tenant(pk=t))
                }
            if offered != expected:
                failures.append(f"{where}: offers {sorted(offered)}, expected {sorted(expected)}")
    return failures


def _check_platform_pages(user: Any) -> list[str]:
    failures = []
    for model in admin.site._registry:
        if model._meta.label_lower in GLOBAL_MODELS:
            status = call(user.pk, "get", _base_url(model)).status
            if status != 403:
                failures.append(f"GET {_base_url(model)}: {status}, expected 403 (platform page)")
    return failures


@pytest.mark.parametrize("pair", PAIRS, ids=_pair_id)
def test_every_admin_url_answers_as_the_role_in_the_rows_tenant(matrix, assigned, pair):
    roles = matrix.roles(pair)
    failures = []
    for model, model_admin in tenant_admins():
        failures += _check_model(matrix, assigned, roles, model, model_admin)
    failures += _check_custom_views(matrix, assigned, roles)
    failures += _check_autocompletes(matrix, assigned, roles)
    failures += _check_platform_pages(assigned)
    assert not failures, "\n".join(failures)


def _sampled_actions(matrix: Matrix, model: Any, model_admin: Any, turn: int) -> list[Any]:
    """One action per distinct permission of each admin, a different one for each pair.

    Actions that share a permission share their scoping; over the 25 pairs every
    action of a group runs several times. Actions with an effect (for a superuser)
    come first: they are the ones that can show a violation.
    """
    su = _su_request(matrix)
    groups: dict[tuple[str, ...], list[tuple[str, Any]]] = {}
    for name, (func, _, _) in sorted(model_admin.get_actions(su).items()):
        groups.setdefault(_action_perms(model_admin, func), []).append((name, func))
    chosen = []
    for members in groups.values():
        effective = [m for m in members if matrix.action_effects[(model, m[0])]] or members
        chosen.append(effective[turn % len(effective)])
    return chosen


@pytest.mark.parametrize("pair", PAIRS, ids=_pair_id)
def test_every_action_acts_only_where_the_role_in_the_rows_tenant_allows(matrix, assigned, pair):
    roles = matrix.roles(pair)
    before = fingerprints(matrix.tenant_ids)
    failures = []
    for model, model_admin in tenant_admins():
        rows = {t: _rows(model, Tenant(pk=t)) for t in matrix.tenant_ids}
        selected = [row.pk for tenant_rows in rows.values() for row in tenant_rows]
        for action, func in _sampled_actions(matrix, model, model_admin, PAIRS.index(pair)):
            perms = _action_perms(model_admin, func)
            allowed = {t for t in matrix.tenant_ids if grants_any(roles[t], perms)}
            # Where the role allows it and sees every selected row, it acts as for a superuser.
            expected = {
                t
                for t in matrix.action_effects[(model, action)] & allowed
                if all(sees(roles[t], row, assigned) for row in rows[t])
            }
            if action == "delete_selected" and expected:
                # Django deletes nothing when the cascade reaches rows the user may not
                # delete (their role in the rows' tenant decides): the superuser may.
                deletable = model._base_manager.filter(tenant_id__in=expected, pk__in=selected)
                request = _request(assigned.pk, "post", _base_url(model))
                _, _, perms_needed, protected = model_admin.get_deleted_objects(deletable, request)
                if perms_needed or protected:
                    expected = set()
            answer, changed, error = run_action_rolled_back(
                assigned.pk, model, action, selected, matrix.tenant_ids, before
            )
            where = f"{model._meta.label} action {action}"
            if error:
                failures.append(f"{where}: {error}")
            elif changed - allowed:
                failures.append(f"{where}: changed tenants {sorted(changed - allowed)}' rows")
            elif changed != expected:
                failures.append(f"{where}: changed {sorted(changed)}, expected {sorted(expected)}")
            elif answer is not None and answer.status not in (200, 302, 403):
                failures.append(f"{where}: answered {answer.status}")
    assert not failures, "\n".join(failures)
