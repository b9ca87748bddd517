from __future__ import annotations

from django.db import models


class BookingStatus(models.TextChoices):
    REQUESTED = "requested", "Requested"
    CONFIRMED = "confirmed", "Confirmed"
    CHECKED_IN = "checked_in", "Checked in"
    CHECKED_OUT = "checked_out", "Checked out"
    CANCELLED = "cancelled", "Cancelled"
    NO_SHOW = "no_show", "No-show"


# Statuses that occupy the property's dates (the exclusion constraint's condition).
OCCUPYING_STATUSES = (
    BookingStatus.REQUESTED,
    BookingStatus.CONFIRMED,
    BookingStatus.CHECKED_IN,
    BookingStatus.CHECKED_OUT,
)

# The whole lifecycle: from -> allowed targets. Nothing else is legal.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    BookingStatus.REQUESTED: (BookingStatus.CONFIRMED, BookingStatus.CANCELLED),
    BookingStatus.CONFIRMED: (
        BookingStatus.CHECKED_IN,
        BookingStatus.CANCELLED,
        BookingStatus.NO_SHOW,
    ),
    BookingStatus.CHECKED_IN: (BookingStatus.CHECKED_OUT,),
    BookingStatus.CHECKED_OUT: (),
    BookingStatus.CANCELLED: (),
    BookingStatus.NO_SHOW: (),
}

MODIFIABLE_STATUSES = (BookingStatus.REQUESTED, BookingStatus.CONFIRMED)


class DeclineReason(models.TextChoices):
    """Why a request to book ended without being accepted (its cancellation reason)."""

    HOST = "host", "declined by the host"
    EXPIRED = "expired", "request expired"


class BookingSource(models.TextChoices):
    DIRECT = "direct", "Direct (API)"
    ADMIN = "admin", "Admin"
    AIRBNB = "airbnb", "Airbnb"
    BOOKING_COM = "booking_com", "Booking.com"
    VRBO = "vrbo", "Vrbo"
    OTHER = "other", "Other channel"


class CalendarEntryKind(models.TextChoices):
    BOOKING = "booking", "Booking"
    BLOCK = "block", "Block"


class DayStatus(models.TextChoices):
    AVAILABLE = "available", "Available"
    BOOKED = "booked", "Booked"
    BLOCKED = "blocked", "Blocked"


class MessageSender(models.TextChoices):
    GUEST = "guest", "Guest"
    HOST = "host", "Host"


class PaymentMethod(models.TextChoices):
    BANK_TRANSFER = "bank_transfer", "Bank transfer"
    CASH = "cash", "Cash"
    CARD_TERMINAL = "card_terminal", "Card terminal"


class PaymentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RECEIVED = "received", "Received"
    FAILED = "failed", "Failed"
    # Not owed any more: the stay changed before it was paid (a new request replaces it).
    CANCELLED = "cancelled", "Cancelled"


class RefundStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    COMPLETED = "completed", "Completed"


class LedgerKind(models.TextChoices):
    ACCOMMODATION = "accommodation", "Accommodation revenue"
    CLEANING = "cleaning", "Cleaning fee"
    TAX = "tax", "Taxes"
    CANCELLATION_FEE = "cancellation_fee", "Cancellation fee"
    PAYMENT = "payment", "Payment received"
    REFUND = "refund", "Refund paid"


# Cancellation policies: (days before check-in, percent refunded), first match wins.
CANCELLATION_TIERS: dict[str, tuple[tuple[int, int], ...]] = {
    "flexible": ((1, 100), (0, 0)),
    "moderate": ((5, 100), (0, 50)),
    "strict": ((14, 100), (7, 50), (0, 0)),
}


class TaxKind(models.TextChoices):
    PERCENT = "percent", "Percent of accommodation and cleaning"
    PER_NIGHT = "per_night", "Fixed amount per night"
    PER_GUEST_NIGHT = "per_guest_night", "Amount per guest per night (city tax)"
