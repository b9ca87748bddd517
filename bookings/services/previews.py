"""What a guest's change or cancellation would do to the stay and the money, before they confirm.

Each preview applies the same rules as the write it stands for (``booking_modify``,
``booking_cancel`` and ``payments_settle``), so the page and the API show the figure
the guest will get.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.db.models import Sum

from bookings.choices import MODIFIABLE_STATUSES, TRANSITIONS, BookingStatus, PaymentStatus
from bookings.errors import BookingError
from bookings.models import Booking
from bookings.pricing import Quote, quote_stay
from bookings.selectors import block_conflicts, booking_conflicts
from bookings.services.lifecycle import (
    booking_cancellation_terms,
    booking_change_retention,
    booking_validate_stay,
)
from bookings.services.payments import PAID_HERE_SOURCES

ZERO = Decimal("0.00")


def booking_paid(booking: Booking) -> Decimal:
    """Money the guest has paid for the stay and not had back (received - refunds)."""
    received = booking.payments.filter(status=PaymentStatus.RECEIVED).aggregate(s=Sum("amount"))
    refunded = booking.refunds.aggregate(s=Sum("amount"))
    return (received["s"] or ZERO) - (refunded["s"] or ZERO)


@dataclass(frozen=True)
class CancellationPreview:
    policy: str
    days_before: int
    refund_percent: int
    fee: Decimal  # what the guest still owes of the total
    paid: Decimal
    refund: Decimal  # what the guest gets back, paid - fee, never below 0
    still_owed: Decimal  # the fee not covered by what was paid (bank transfer to the host)
    currency: str


def guest_may_change(booking: Booking) -> None:
    """A guest changes or cancels here only what they booked here (the API, or the host for
    them): a stay booked on a channel is changed there, or the channel would still hold it."""
    if booking.source not in PAID_HERE_SOURCES:
        raise BookingError(
            "booked_elsewhere",
            f"This stay was booked on {booking.get_source_display()}: change or cancel it there.",
        )


def booking_cancel_preview(*, booking: Booking, on: date | None = None) -> CancellationPreview:
    """The policy's terms for a guest cancelling today, as ``booking_cancel`` fixes them."""
    guest_may_change(booking)
    if BookingStatus.CANCELLED not in TRANSITIONS[booking.status]:
        raise BookingError(
            "invalid_transition",
            f"A {booking.get_status_display().lower()} booking cannot be cancelled.",
        )
    terms = booking_cancellation_terms(booking=booking, on=on)
    paid_here = booking.source in PAID_HERE_SOURCES  # a channel collects its own bookings' money
    paid = booking_paid(booking) if paid_here else ZERO
    return CancellationPreview(
        policy=terms.policy,
        days_before=terms.days_before,
        refund_percent=terms.refund_percent,
        fee=terms.fee,
        paid=paid,
        refund=max(paid - terms.fee, ZERO),
        still_owed=max(terms.fee - paid, ZERO) if paid_here else ZERO,
        currency=booking.currency,
    )


@dataclass(frozen=True)
class ChangePreview:
    check_in: date
    check_out: date
    guests_count: int
    quote: Quote
    retained: Decimal  # kept under the policy, by earlier changes and by this one
    retained_now: Decimal  # kept under the policy by this change
    total: Decimal  # the stay's new total: the quote and what is retained
    previous_total: Decimal
    paid: Decimal
    difference: Decimal  # new total - previous total
    to_pay: Decimal  # asked of the guest after the change (new total - paid, if positive)
    to_refund: Decimal  # refunded after the change (paid - new total, if positive)


def booking_change_preview(
    *,
    booking: Booking,
    check_in: date,
    check_out: date,
    guests_count: int,
    under_policy: bool = True,
) -> ChangePreview:
    """Re-price the stay for new dates or party size; raises BookingError as the change would.

    Availability is checked here so the guest learns early; ``booking_modify`` checks it
    again under the property's lock when they confirm (the exclusion constraint decides).
    ``under_policy`` (a guest's change, the default): a cheaper stay keeps what the
    cancellation policy charges for the part given up, as ``booking_modify`` will.
    """
    guest_may_change(booking)
    if booking.status not in MODIFIABLE_STATUSES:
        raise BookingError(
            "not_modifiable",
            f"A {booking.get_status_display().lower()} booking cannot be changed.",
        )
    prop = booking.property
    booking_validate_stay(
        property=prop, check_in=check_in, check_out=check_out, guests_count=guests_count
    )
    if (
        booking_conflicts(
            property_id=prop.pk,
            check_in=check_in,
            check_out=check_out,
            exclude_booking_id=booking.pk,
        ).exists()
        or block_conflicts(property_id=prop.pk, start=check_in, end=check_out).exists()
    ):
        raise BookingError("unavailable", "The property is not free on these dates.")
    quote = quote_stay(property=prop, check_in=check_in, check_out=check_out, guests=guests_count)
    retained_now = (
        booking_change_retention(booking=booking, new_price=quote.total) if under_policy else ZERO
    )
    retained = booking.retained_amount + retained_now
    total = quote.total + retained
    paid = booking_paid(booking) if booking.source in PAID_HERE_SOURCES else ZERO
    return ChangePreview(
        check_in=check_in,
        check_out=check_out,
        guests_count=guests_count,
        quote=quote,
        retained=retained,
        retained_now=retained_now,
        total=total,
        previous_total=booking.total,
        paid=paid,
        difference=total - booking.total,
        to_pay=max(total - paid, ZERO),
        to_refund=max(paid - total, ZERO),
    )
