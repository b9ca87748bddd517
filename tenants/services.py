from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction

from tenants.models import Membership, Tenant
from tenants.selectors import memberships_forget


@transaction.atomic
def tenant_create(*, name: str, slug: str) -> Tenant:
    return Tenant.objects.create(name=name, slug=slug)


@transaction.atomic
def membership_grant(*, user: User, tenant: Tenant, role: str) -> Membership:
    """Give ``user`` a role in ``tenant`` (replacing any other role there) and admin access.

    The role's rights hold only on ``tenant``'s rows (``tenants.permissions``); no
    group is added, so a later demotion leaves nothing of the old role behind.
    """
    membership, _ = Membership.objects.update_or_create(
        user=user, tenant=tenant, defaults={"role": role}
    )
    if not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    memberships_forget(user)
    return membership


@transaction.atomic
def membership_revoke(*, user: User, tenant: Tenant) -> bool:
    """Remove ``user`` from ``tenant``: from the next request on, none of its rows answer.

    Returns whether there was a membership to remove.
    """
    deleted, _ = Membership.objects.filter(user=user, tenant=tenant).delete()
    memberships_forget(user)
    return bool(deleted)
