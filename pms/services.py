"""Writes of the shared kernel."""

from __future__ import annotations

from django.db import transaction

from pms.models import Guest
from tenants.models import Tenant


@transaction.atomic
def guest_get_or_create(*, tenant: Tenant, name: str, email: str, phone: str = "") -> Guest:
    """The tenant's guest with this email (case-insensitive), or a new one.

    An existing guest's name and phone are not overwritten by what a booking
    request says: the manager's record stays the manager's.
    """
    email = email.strip()
    existing = (
        Guest.objects.filter(tenant=tenant, email__iexact=email).order_by("pk").first()
        if email
        else None
    )
    if existing is not None:
        return existing
    return Guest.objects.create(tenant=tenant, name=name.strip(), email=email, phone=phone.strip())
