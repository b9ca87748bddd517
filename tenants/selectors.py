from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from tenants.models import Membership, Tenant

# The user's memberships are read once per request and kept on the user object,
# which Django builds afresh for every request: a role changed or removed between
# two requests acts on the second one. Services that change memberships drop it.
_MEMBERSHIP_CACHE = "_tenant_roles_by_tenant"


def roles_by_tenant(user: Any) -> dict[int, str]:
    """``{tenant_id: role}`` of ``user``'s memberships (read once per request)."""
    if not getattr(user, "is_authenticated", False):
        return {}
    if not hasattr(user, _MEMBERSHIP_CACHE):
        setattr(
            user,
            _MEMBERSHIP_CACHE,
            dict(Membership.objects.filter(user=user).values_list("tenant_id", "role")),
        )
    return dict(getattr(user, _MEMBERSHIP_CACHE))


def memberships_forget(user: Any) -> None:
    """Drop the per-request copy of ``user``'s memberships (after they changed)."""
    if hasattr(user, _MEMBERSHIP_CACHE):
        delattr(user, _MEMBERSHIP_CACHE)


def tenant_ids_for_user(user: Any, *, roles: tuple[str, ...] | None = None) -> list[int]:
    """Ids of the tenants ``user`` belongs to (with one of ``roles``, if given)."""
    return sorted(
        tenant_id
        for tenant_id, role in roles_by_tenant(user).items()
        if roles is None or role in roles
    )


def tenants_for_user(user: Any) -> QuerySet[Tenant]:
    if getattr(user, "is_superuser", False):
        return Tenant.objects.all()
    return Tenant.objects.filter(id__in=tenant_ids_for_user(user))


def tenant_by_slug(slug: str) -> Tenant | None:
    """The tenant a public URL names (the booking engine's search), or None."""
    return Tenant.objects.filter(slug=slug).first()
