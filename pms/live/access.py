"""Who may see what on a live page: the rights one render may be shared across.

Two viewers share a render only when every input of the permission backends
(config.settings AUTHENTICATION_BACKENDS: Django's model permissions and the tenant
roles of tenants.permissions) is the same for both: superuser, staff and active flags,
groups, own permissions, and each (tenant, role) membership. A cleaner's pages also
show their own tasks (automation.dashboard), so a cleaner's key is theirs alone. The
key is read when a live connection opens and again before every render (pms.live.hub).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model

from tenants.choices import Role
from tenants.models import Membership


@dataclass(frozen=True)
class Access:
    user_id: int
    key: tuple[Any, ...]
    tenant_ids: frozenset[int] | None  # None: every tenant (a superuser)


def access_of(user: Any) -> Access:
    key = access_keys({user.pk})[user.pk]
    memberships = key[3]
    tenants = None if user.is_superuser else frozenset(tenant for tenant, _ in memberships)
    return Access(user_id=user.pk, key=key, tenant_ids=tenants)


def access_keys(user_ids: Iterable[int]) -> dict[int, tuple[Any, ...]]:
    """Each user's rights key, read now: four queries whatever the number of users.

    A user who is gone has no key.
    """
    ids = set(user_ids)
    users = get_user_model().objects.filter(pk__in=ids)
    flags = {
        pk: rest for pk, *rest in users.values_list("pk", "is_superuser", "is_staff", "is_active")
    }
    memberships: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for user_id, tenant_id, role in Membership.objects.filter(user_id__in=ids).values_list(
        "user_id", "tenant_id", "role"
    ):
        memberships[user_id].append((tenant_id, role))
    groups: dict[int, list[int]] = defaultdict(list)
    for user_id, group_id in users.model.groups.through.objects.filter(user_id__in=ids).values_list(
        "user_id", "group_id"
    ):
        groups[user_id].append(group_id)
    own: dict[int, list[int]] = defaultdict(list)
    for user_id, permission_id in users.model.user_permissions.through.objects.filter(
        user_id__in=ids
    ).values_list("user_id", "permission_id"):
        own[user_id].append(permission_id)
    keys = {}
    for pk, user_flags in flags.items():
        roles = tuple(sorted(memberships[pk]))
        key: tuple[Any, ...] = (
            *user_flags,
            roles,
            tuple(sorted(groups[pk])),
            tuple(sorted(own[pk])),
        )
        if any(role == Role.CLEANER for _, role in roles):
            key += (("user", pk),)
        keys[pk] = key
    return keys


def sees_tenant(access: Access, tenant_id: int | None) -> bool:
    """Whether a notice of ``tenant_id`` (None: no tenant's) may concern this viewer."""
    return tenant_id is None or access.tenant_ids is None or tenant_id in access.tenant_ids
