from __future__ import annotations

from pms.errors import DomainError


class BookingError(DomainError):
    """A booking rule was broken. ``code`` is stable (the API returns it)."""
