"""Bookings admin, split by domain. Importing the modules registers the admins."""

from bookings.admin import booking, money, pricing  # noqa: F401
