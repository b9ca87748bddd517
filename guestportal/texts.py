"""Translated words for what the services name by code (statuses, error codes, price lines).

The services' own messages are English for staff and logs; a guest reads these.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.utils.translation import gettext_lazy as _

from bookings.choices import BookingStatus, PaymentStatus, RefundStatus
from bookings.models import Booking
from pms.errors import DomainError

if TYPE_CHECKING:
    from django_stubs_ext import StrPromise

STATUS: dict[str, StrPromise] = {
    BookingStatus.REQUESTED: _("Requested: waiting for the host's answer"),
    BookingStatus.CONFIRMED: _("Confirmed"),
    BookingStatus.CHECKED_IN: _("Checked in"),
    BookingStatus.CHECKED_OUT: _("Checked out"),
    BookingStatus.CANCELLED: _("Cancelled"),
    BookingStatus.NO_SHOW: _("No-show"),
}

PAYMENT_STATUS: dict[str, StrPromise] = {
    PaymentStatus.PENDING: _("Waiting for your transfer"),
    PaymentStatus.RECEIVED: _("Received"),
    PaymentStatus.FAILED: _("Failed"),
    PaymentStatus.CANCELLED: _("No longer due"),
}

REFUND_STATUS: dict[str, StrPromise] = {
    RefundStatus.PENDING: _("On its way to you"),
    RefundStatus.COMPLETED: _("Sent"),
}

ERRORS: dict[str, StrPromise] = {
    "unavailable": _("The home is not free on these dates."),
    "invalid_dates": _("Departure must be after arrival."),
    "past_date": _("Arrival cannot be in the past."),
    "beyond_horizon": _("The home does not take bookings that far ahead."),
    "too_few_nights": _("The stay is shorter than the home's minimum."),
    "too_many_nights": _("The stay is longer than the home's maximum."),
    "too_many_guests": _("The home does not take that many guests."),
    "property_inactive": _("The home is not taking bookings."),
    "not_modifiable": _("This booking can no longer be changed."),
    "invalid_transition": _("This booking can no longer be cancelled."),
    "empty_message": _("The message is empty."),
    "message_too_long": _("The message is too long."),
}

# Price lines by code (bookings.pricing); a code not listed shows the line's own label.
LINES: dict[str, StrPromise] = {
    "accommodation": _("Accommodation"),
    "cleaning": _("Cleaning"),
    "taxes": _("Taxes"),
}


def error_text(exc: DomainError) -> str:
    """The guest's words for a refusal, in the active language (the code's, else the message)."""
    text = ERRORS.get(exc.code)
    return str(text) if text is not None else exc.message


def price_lines(booking: Booking) -> list[dict[str, Any]]:
    """The stay's price lines as the booking stored them: label and amount."""
    stored = getattr(booking, "price_lines", None)
    if stored:
        return [
            {
                "label": LINES.get(line.get("code", ""), line.get("label", "")),
                "detail": line.get("label", "") if line.get("code") not in LINES else "",
                "amount": Decimal(str(line["amount"])),
            }
            for line in stored
        ]
    lines = [
        {"label": LINES["accommodation"], "detail": "", "amount": booking.accommodation_amount},
        {"label": LINES["cleaning"], "detail": "", "amount": booking.cleaning_amount},
        {"label": LINES["taxes"], "detail": "", "amount": booking.tax_amount},
    ]
    return [line for line in lines if line["amount"]]
