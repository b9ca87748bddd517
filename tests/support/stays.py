"""Booking a stay in a tenant world, the way most pipeline tests need one."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from bookings.services import booking_create


def book_stay(world: Any, check_in: date, nights: int = 3) -> Any:
    """A booking of ``world``'s property and guest, ``nights`` from ``check_in``."""
    return booking_create(
        tenant=world.tenant,
        property=world.property,
        guest=world.guest,
        check_in=check_in,
        check_out=check_in + timedelta(days=nights),
    )
