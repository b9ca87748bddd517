"""Per-tenant authorization: a role's rights hold only in the tenant where the user has it.

``TenantRoleBackend`` is a Django authentication backend that only answers
permission questions (it authenticates nobody):

- ``user.has_perm(perm, obj)`` is True when the user's role *in obj's tenant*
  grants ``perm`` (``tenants.roles.ROLE_PERMISSIONS``). A manager of A who cleans
  for B is a manager on A's rows and a cleaner on B's.
- ``user.has_perm(perm)`` without an object means "in at least one tenant": it
  decides whether a page or an action is offered at all; which rows it acts on
  is narrowed per tenant (``tenant_ids_granting``, ``tenants.scoping``).

Nothing is stored per user: the answer comes from the Membership rows, read once
per request (``tenants.selectors.roles_by_tenant``), so a demotion or a removal
acts on the next request. Platform permissions (the "operators" group) still come
from Django's ModelBackend and groups; no role is a group.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.backends import BaseBackend

from tenants.models import Tenant
from tenants.roles import ROLE_EXTRA_PERMISSIONS, ROLE_PERMISSIONS
from tenants.selectors import roles_by_tenant


def _grants(role: str) -> frozenset[str]:
    perms = {
        f"{label.split('.')[0]}.{action}_{label.split('.')[1]}"
        for label, actions in ROLE_PERMISSIONS.get(role, {}).items()
        for action in actions
    }
    return frozenset(perms | set(ROLE_EXTRA_PERMISSIONS.get(role, ())))


ROLE_GRANTS: dict[str, frozenset[str]] = {role: _grants(role) for role in ROLE_PERMISSIONS}


def role_grants(role: str | None, perm: str) -> bool:
    """Does ``role`` (None: no membership) grant ``perm`` ("app_label.codename")?"""
    return role is not None and perm in ROLE_GRANTS.get(role, frozenset())


def tenant_of(obj: Any) -> int | None:
    """The tenant an object belongs to (a Tenant is its own), or None."""
    if isinstance(obj, Tenant):
        return obj.pk
    return getattr(obj, "tenant_id", None)


def tenant_ids_granting(user: Any, perms: Iterable[str]) -> list[int]:
    """Tenants where ``user``'s role grants at least one of ``perms``."""
    wanted = tuple(perms)
    return sorted(
        tenant_id
        for tenant_id, role in roles_by_tenant(user).items()
        if any(role_grants(role, perm) for perm in wanted)
    )


class TenantRoleBackend(BaseBackend):
    """Answers ``has_perm`` from the user's role in the object's tenant."""

    def get_all_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        if not getattr(user_obj, "is_active", False):
            return set()
        roles = roles_by_tenant(user_obj)
        if obj is not None:
            role = roles.get(tenant_of(obj))  # type: ignore[arg-type]
            return set(ROLE_GRANTS.get(role, ())) if role else set()
        return {perm for role in roles.values() for perm in ROLE_GRANTS.get(role, ())}

    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        if not getattr(user_obj, "is_active", False):
            return False
        if obj is None:
            return any(role_grants(role, perm) for role in roles_by_tenant(user_obj).values())
        tenant_id = tenant_of(obj)
        if tenant_id is None:
            return False
        return role_grants(roles_by_tenant(user_obj).get(tenant_id), perm)

    def has_module_perms(self, user_obj: Any, app_label: str) -> bool:
        prefix = f"{app_label}."
        return any(perm.startswith(prefix) for perm in self.get_all_permissions(user_obj))
