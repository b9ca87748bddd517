from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from tenants.models import Membership, Tenant


def tenant_ids_for_user(user: Any, *, roles: tuple[str, ...] | None = None) -> list[int]:
    """Ids of the tenants ``user`` belongs to (cached on the user object per request)."""
    if not getattr(user, "is_authenticated", False):
        return []
    cache_attr = f"_tenant_ids_{'-'.join(roles) if roles else 'all'}"
    if not hasattr(user, cache_attr):
        memberships = Membership.objects.filter(user=user)
        if roles:
            memberships = memberships.filter(role__in=roles)
        setattr(user, cache_attr, list(memberships.values_list("tenant_id", flat=True)))
    return list(getattr(user, cache_attr))


def tenants_for_user(user: Any) -> QuerySet[Tenant]:
    if getattr(user, "is_superuser", False):
        return Tenant.objects.all()
    return Tenant.objects.filter(id__in=tenant_ids_for_user(user))
