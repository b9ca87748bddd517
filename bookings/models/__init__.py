"""Bookings models, split by domain; import them from ``bookings.models``."""

from bookings.models.booking import Booking, DateRange, RateOverride
from bookings.models.calendar import Block, CalendarEntry
from bookings.models.guest import GuestAccessToken, GuestMessage, IdempotencyKey
from bookings.models.money import LedgerEntry, Payment, Refund
from bookings.models.pricing import PropertyTax, Season

__all__ = [
    "Block",
    "Booking",
    "CalendarEntry",
    "DateRange",
    "GuestAccessToken",
    "GuestMessage",
    "IdempotencyKey",
    "LedgerEntry",
    "Payment",
    "PropertyTax",
    "RateOverride",
    "Refund",
    "Season",
]
