"""Who gets told: the tenant's managers."""

from __future__ import annotations

from tenants.choices import Role
from tenants.models import Membership


def manager_emails(*, tenant_id: int) -> list[str]:
    """Owners' and managers' addresses, deduplicated, in a stable order."""
    emails = (
        Membership.objects.filter(tenant_id=tenant_id, role__in=[Role.OWNER, Role.MANAGER])
        .exclude(user__email="")
        .filter(user__is_active=True)
        .order_by("user__email")
        .values_list("user__email", flat=True)
    )
    return list(dict.fromkeys(emails))
