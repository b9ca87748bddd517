"""Who may see what on a live page: the rights one render may be shared across.

Two viewers share a render only when every input of the permission backends
(config.settings AUTHENTICATION_BACKENDS: Django's model permissions and the tenant
roles of tenants.permissions) is the same for both: superuser and staff flags, groups,
own permissions, and each (tenant, role) membership. A cleaner's pages also show
their own tasks (automation.dashboard), so a cleaner's key is theirs alone. The key is read from the
database whenever a live connection opens, so a changed membership acts on reconnect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tenants.choices import Role
from tenants.models import Membership


@dataclass(frozen=True)
class Access:
    user_id: int
    key: tuple[Any, ...]
    tenant_ids: frozenset[int] | None  # None: every tenant (a superuser)


def access_of(user: Any) -> Access:
    memberships = tuple(
        sorted(Membership.objects.filter(user=user).values_list("tenant_id", "role"))
    )
    groups = tuple(sorted(user.groups.values_list("pk", flat=True)))
    own = tuple(sorted(user.user_permissions.values_list("pk", flat=True)))
    key: tuple[Any, ...] = (
        user.is_superuser,
        user.is_staff,
        user.is_active,
        memberships,
        groups,
        own,
    )
    if any(role == Role.CLEANER for _, role in memberships):
        key += (("user", user.pk),)
    tenants = None if user.is_superuser else frozenset(tenant for tenant, _ in memberships)
    return Access(user_id=user.pk, key=key, tenant_ids=tenants)


def sees_tenant(access: Access, tenant_id: int | None) -> bool:
    """Whether a notice of ``tenant_id`` (None: no tenant's) may concern this viewer."""
    return tenant_id is None or access.tenant_ids is None or tenant_id in access.tenant_ids
