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
    "booked_elsewhere": _("You booked this stay on another site: change or cancel it there."),
    "message_too_long": _("The message is too long."),
}

# Price lines by code (bookings.pricing.QuoteLine); a code not listed shows its own label.
LINES: dict[str, StrPromise] = {
    "nights": _("Nights"),
    "weekend_nights": _("Weekend nights"),
    "override_nights": _("Nights at a special rate"),
    "extra_guests": _("Extra guests"),
    "weekly_discount": _("Weekly discount"),
    "monthly_discount": _("Monthly discount"),
    "cleaning": _("Cleaning"),
    "tax": _("Tax"),
    "retained": _("Kept under the cancellation policy"),
    "accommodation": _("Accommodation"),
    "taxes": _("Taxes"),
}
COUNTED = {"nights", "weekend_nights", "override_nights", "extra_guests"}


def error_text(exc: DomainError) -> str:
    """The guest's words for a refusal, in the active language (the code's, else the message)."""
    text = ERRORS.get(exc.code)
    return str(text) if text is not None else exc.message


def line_rows(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Price lines (``Quote.lines_json`` or ``Booking.price_lines``) as a guest reads them:
    the kind in their language, the season's or tax's name, the count times the unit."""
    rows = []
    for line in lines:
        code = line.get("code", "")
        label = LINES.get(code)
        name = line.get("name", "")
        if label is None:
            title, detail = line.get("label", ""), ""
        elif code == "tax" and name:
            title, detail = name, ""
        else:
            title, detail = label, name
        unit, quantity = Decimal(str(line.get("unit_amount", "0"))), int(line.get("quantity", 1))
        rows.append(
            {
                "label": title,
                "detail": detail,
                "quantity": quantity if code in COUNTED or (code == "tax" and quantity > 1) else 0,
                "unit": unit,
                "amount": Decimal(str(line["amount"])),
            }
        )
    return rows


def price_lines(booking: Booking) -> list[dict[str, Any]]:
    """The stay's price lines as the booking stored them when it was priced."""
    if booking.price_lines:
        return line_rows(booking.price_lines)
    older = [  # priced before bookings kept their lines
        {"code": "accommodation", "amount": booking.accommodation_amount},
        {"code": "cleaning", "amount": booking.cleaning_amount},
        {"code": "taxes", "amount": booking.tax_amount},
    ]
    return line_rows([line for line in older if line["amount"]])
