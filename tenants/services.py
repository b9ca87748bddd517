from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, Group, Permission
from django.db import transaction

from tenants.choices import Role
from tenants.models import Membership, Tenant
from tenants.roles import ROLE_EXTRA_PERMISSIONS, ROLE_PERMISSIONS, group_name


def role_groups_sync() -> None:
    """Create or update one auth group per role. Idempotent; run after migrate."""
    for role in Role:
        group, _ = Group.objects.get_or_create(name=group_name(role))
        codenames: list[tuple[str, str]] = []
        for model_label, actions in ROLE_PERMISSIONS.get(role, {}).items():
            app_label, model = model_label.split(".")
            codenames += [(app_label, f"{action}_{model}") for action in actions]
        for perm in ROLE_EXTRA_PERMISSIONS.get(role, ()):
            app_label, codename = perm.split(".")
            codenames.append((app_label, codename))
        permissions = [
            p
            for p in Permission.objects.select_related("content_type").filter(
                codename__in=[c for _, c in codenames]
            )
            if (p.content_type.app_label, p.codename) in codenames
        ]
        group.permissions.set(permissions)


@transaction.atomic
def tenant_create(*, name: str, slug: str) -> Tenant:
    return Tenant.objects.create(name=name, slug=slug)


@transaction.atomic
def membership_grant(*, user: AbstractBaseUser, tenant: Tenant, role: str) -> Membership:
    """Give ``user`` a role in ``tenant``: admin access plus the role's group."""
    membership, _ = Membership.objects.update_or_create(
        user=user, tenant=tenant, defaults={"role": role}
    )
    if not user.is_staff:  # type: ignore[attr-defined]
        user.is_staff = True  # type: ignore[attr-defined]
        user.save(update_fields=["is_staff"])
    user.groups.add(Group.objects.get_or_create(name=group_name(role))[0])  # type: ignore[attr-defined]
    return membership
