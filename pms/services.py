"""Writes of the shared kernel."""

from __future__ import annotations

from django.db import transaction

from pms.models import Guest
from tenants.models import Tenant


@transaction.atomic
def guest_get_or_create(*, tenant: Tenant, name: str, email: str, phone: str = "") -> Guest:
    """The tenant's guest with exactly these details, or a new guest record.

    Whoever sends a booking request is not authenticated: knowing an address proves
    nothing. So a stored guest is reused only when name (case-insensitive), email
    (case-insensitive) and phone all match what the request says; otherwise the booking
    gets its own guest record. Never the stored one: its name would be shown back to
    the requester and its phone would receive messages the requester caused. Stored
    records are never overwritten either: the manager's record stays the manager's.
    """
    name, email, phone = name.strip(), email.strip(), phone.strip()
    if email:
        for candidate in Guest.objects.filter(tenant=tenant, email__iexact=email).order_by("pk"):
            if candidate.name.casefold() == name.casefold() and candidate.phone == phone:
                return candidate
    return Guest.objects.create(tenant=tenant, name=name, email=email, phone=phone)
