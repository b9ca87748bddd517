"""Booking writes. Every one is atomic, re-checks the rules, and emits its event.

The admin, the API, tasks and channel imports all call these; none repeats
their logic. The property row is locked while availability is checked, so two
bookings for one property are decided one after the other; the exclusion
constraint stays the last word.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from bookings.choices import (
    MODIFIABLE_STATUSES,
    TRANSITIONS,
    BookingSource,
    BookingStatus,
    DeclineReason,
    PaymentStatus,
)
from bookings.errors import BookingError
from bookings.events import (
    BOOKING_AGGREGATE,
    BOOKING_CANCELLED,
    BOOKING_CHECKED_IN,
    BOOKING_CHECKED_OUT,
    BOOKING_CONFIRMED,
    BOOKING_CREATED,
    BOOKING_MODIFIED,
    BOOKING_NO_SHOW,
    BookingSnapshot,
    booking_cancelled_payload,
    booking_checked_in_payload,
    booking_checked_out_payload,
    booking_confirmed_payload,
    booking_created_payload,
    booking_modified_payload,
    booking_no_show_payload,
    booking_snapshot,
)
from bookings.models import Booking
from bookings.pricing import (
    CancellationTerms,
    Quote,
    cancellation_terms,
    check_stay_length,
    lines_with_retained,
    quote_stay,
    season_of_night,
)
from bookings.selectors import block_conflicts, booking_conflicts
from pms.models import Guest, Property
from pms.pipeline.publishing import emit_event
from tenants.models import Tenant

logger = logging.getLogger(__name__)

REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I


def _new_reference() -> str:
    return "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(8))


def _apply_quote(booking: Booking, quote: Quote, retained: Decimal = Decimal("0.00")) -> None:
    """The quote's price, plus what the policy kept of earlier reductions (``retained``):
    booked as accommodation, so the ledger's split and the total stay one sum."""
    booking.accommodation_amount = quote.accommodation + retained
    booking.cleaning_amount = quote.cleaning_fee
    booking.tax_amount = quote.taxes
    booking.total = quote.total + retained
    booking.currency = quote.currency
    booking.retained_amount = retained
    booking.price_lines = lines_with_retained(quote, retained)


def booking_change_retention(
    *, booking: Booking, new_price: Decimal, on: date | None = None
) -> Decimal:
    """What the policy keeps when the guest makes their stay cheaper, changing it on ``on``.

    The reduction (the stay's price before, without what earlier changes kept, less the new
    price) is treated as a cancellation of that part, on the stay's check-in as booked: the
    fee the policy would charge for it is kept. A request never accepted keeps nothing.
    """
    reduction = booking.total - booking.retained_amount - new_price
    if reduction <= 0 or booking.status == BookingStatus.REQUESTED:
        return Decimal("0.00")
    today = on or timezone.localdate(timezone=booking.property.timezone)
    return cancellation_terms(
        property=booking.property, check_in=booking.check_in, total=reduction, on=today
    ).fee


def _emit(booking: Booking, event_type: str, payload: BookingSnapshot, actor: str) -> None:
    emit_event(
        tenant_id=booking.tenant_id,
        aggregate_type=BOOKING_AGGREGATE,
        aggregate_id=booking.pk,
        event_type=event_type,
        payload=dict(payload),
        actor=actor,
    )


def booking_validate_stay(
    *,
    property: Property,
    check_in: date,
    check_out: date,
    guests_count: int,
    allow_past: bool = False,
) -> None:
    """The property's rules for a stay: dates, horizon, length, party size, open for bookings.

    Raises BookingError. Availability is not checked here: the writes check it while
    holding the property's row lock (forms call this one to show the rules early).
    """
    if check_out <= check_in:
        raise BookingError("invalid_dates", "Check-out must be after check-in.", field="check_out")
    today = timezone.localdate(timezone=property.timezone)
    if not allow_past and check_in < today:
        raise BookingError("past_date", "Check-in cannot be in the past.", field="check_in")
    # The horizon also keeps every later date computation (cleaning after check-out,
    # reminders before check-in) far from date.max: 9999-12-30 once failed in a handler.
    horizon = property.horizon_days
    if (check_out - today).days > horizon:
        raise BookingError(
            "beyond_horizon",
            f"{property.name} takes bookings up to {horizon} days ahead.",
            field="check_out",
        )
    # The stay-length rules of the check-in night's season (else the property's).
    check_stay_length(
        property=property,
        season=season_of_night(property=property, night=check_in),
        nights=(check_out - check_in).days,
    )
    if guests_count < 1 or guests_count > property.max_guests:
        raise BookingError(
            "too_many_guests",
            f"{property.name} takes at most {property.max_guests} guests.",
            field="guests_count",
        )
    if not property.is_active:
        raise BookingError("property_inactive", f"{property.name} is not taking bookings.")


def _validate_stay(
    *,
    property: Property,
    check_in: date,
    check_out: date,
    guests_count: int,
    exclude_booking_id: int | None = None,
    allow_past: bool = False,
) -> None:
    """The rules, then availability. Call while holding the property's row lock."""
    booking_validate_stay(
        property=property,
        check_in=check_in,
        check_out=check_out,
        guests_count=guests_count,
        allow_past=allow_past,
    )
    if booking_conflicts(
        property_id=property.pk,
        check_in=check_in,
        check_out=check_out,
        exclude_booking_id=exclude_booking_id,
    ).exists():
        raise BookingError("unavailable", "These dates overlap another booking of this property.")
    if block_conflicts(property_id=property.pk, start=check_in, end=check_out).exists():
        raise BookingError("unavailable", "These dates are blocked on this property.")


def _unpaid_public_bookings(since: datetime) -> QuerySet[Booking]:
    return Booking.objects.filter(source=BookingSource.DIRECT, created_at__gte=since).exclude(
        payments__status=PaymentStatus.RECEIVED
    )


def _check_public_limits(*, property: Property, email: str) -> None:
    """Calendar squatting: a script books every free night (nothing to pay up front) and
    makes the host email any address. Unpaid API bookings are capped per property per hour
    and per guest email per day (across tenants: the address is the victim).

    Call while holding the property's row lock: the per-property count is then exact.
    The per-email count takes a transaction-level advisory lock on the address.
    """
    now = timezone.now()
    per_property = settings.API_BOOKINGS_PER_PROPERTY_PER_HOUR
    if per_property and (
        _unpaid_public_bookings(now - timedelta(hours=1)).filter(property=property).count()
        >= per_property
    ):
        raise BookingError(
            "booking_limit_property",
            f"{property.name} takes at most {per_property} unpaid online bookings an hour; "
            "try again later or contact the host.",
        )
    per_email = settings.API_BOOKINGS_PER_GUEST_EMAIL_PER_DAY
    if per_email and email:
        address = email.strip().lower()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [address])
        if (
            _unpaid_public_bookings(now - timedelta(days=1))
            .filter(guest__email__iexact=address)
            .values("pk")
            .distinct()
            .count()
            >= per_email
        ):
            raise BookingError(
                "booking_limit_guest",
                f"At most {per_email} unpaid online bookings a day for one email address.",
                field="guest",
            )


def _save_checked(booking: Booking, **save_kwargs: Any) -> None:
    try:
        with transaction.atomic():
            booking.save(**save_kwargs)
    except IntegrityError as exc:
        if "booking_no_double_booking" in str(exc):
            raise BookingError(
                "unavailable", "These dates overlap another booking of this property."
            ) from exc
        raise


def guest_booking_status(*, property: Property) -> str:
    """The status a guest's online booking of ``property`` starts in: its booking mode's.

    Instant: confirmed at once. Request to book: requested (the dates are held; the host
    accepts with ``booking_confirm`` or declines with ``booking_decline``).
    """
    return BookingStatus.REQUESTED if property.takes_requests else BookingStatus.CONFIRMED


def booking_create(
    *,
    tenant: Tenant,
    property: Property,
    guest: Guest,
    check_in: date,
    check_out: date,
    guests_count: int = 1,
    status: str = BookingStatus.CONFIRMED,
    source: str = BookingSource.DIRECT,
    external_reference: str = "",
    actor: str = "",
    allow_past: bool = False,
    public_limits: bool = False,
) -> Booking:
    """A new booking. ``public_limits``: the request came from the public API (nobody
    authenticated), so the unpaid-booking limits per property and per guest email apply."""
    if property.tenant_id != tenant.pk or guest.tenant_id != tenant.pk:
        raise BookingError("not_found", "Property or guest not found.")
    if status not in (BookingStatus.REQUESTED, BookingStatus.CONFIRMED) and not allow_past:
        raise BookingError("invalid_status", "A new booking is requested or confirmed.")
    with transaction.atomic():
        locked = Property.objects.select_for_update().get(pk=property.pk)
        _validate_stay(
            property=locked,
            check_in=check_in,
            check_out=check_out,
            guests_count=guests_count,
            allow_past=allow_past,
        )
        if public_limits:
            _check_public_limits(property=locked, email=guest.email)
        booking = Booking(
            tenant=tenant,
            property=locked,
            guest=guest,
            reference=_new_reference(),
            check_in=check_in,
            check_out=check_out,
            status=status,
            guests_count=guests_count,
            source=source,
            external_reference=external_reference,
        )
        _apply_quote(
            booking,
            quote_stay(
                property=locked, check_in=check_in, check_out=check_out, guests=guests_count
            ),
        )
        _save_checked(booking)
        _emit(booking, BOOKING_CREATED, booking_created_payload(booking), actor)
    logger.info(
        "booking created reference=%s property=%s tenant=%s actor=%s",
        booking.reference,
        booking.property_id,
        tenant.pk,
        actor or "-",
    )
    return booking


def booking_modify(
    *,
    booking: Booking,
    check_in: date,
    check_out: date,
    property: Property | None = None,
    guests_count: int | None = None,
    actor: str = "",
    under_policy: bool = False,
) -> Booking:
    """Change dates, property or party size: a ``booking.modified`` event.

    ``under_policy``: the guest asked for the change (guest pages, guest API), so a cheaper
    stay keeps what the cancellation policy charges for the part given up
    (``booking_change_retention``). A manager's change re-prices without it.
    """
    target = property or booking.property
    with transaction.atomic():
        locked = Booking.objects.select_for_update().get(pk=booking.pk)
        if locked.status not in MODIFIABLE_STATUSES:
            raise BookingError(
                "not_modifiable",
                f"A {locked.get_status_display().lower()} booking cannot be changed.",
            )
        if target.tenant_id != locked.tenant_id:
            raise BookingError("not_found", "Property not found.")
        locked_property = Property.objects.select_for_update().get(pk=target.pk)
        new_guests = guests_count if guests_count is not None else locked.guests_count
        _validate_stay(
            property=locked_property,
            check_in=check_in,
            check_out=check_out,
            guests_count=new_guests,
            exclude_booking_id=locked.pk,
        )
        previous = booking_snapshot(locked)
        quote = quote_stay(
            property=locked_property, check_in=check_in, check_out=check_out, guests=new_guests
        )
        retained = locked.retained_amount
        if under_policy:
            retained += booking_change_retention(booking=locked, new_price=quote.total)
        locked.property = locked_property
        locked.check_in, locked.check_out, locked.guests_count = check_in, check_out, new_guests
        _apply_quote(locked, quote, retained)
        _save_checked(
            locked,
            update_fields=[
                "property",
                "check_in",
                "check_out",
                "guests_count",
                "accommodation_amount",
                "cleaning_amount",
                "tax_amount",
                "total",
                "currency",
                "retained_amount",
                "price_lines",
                "updated_at",
            ],
        )
        _emit(
            locked,
            BOOKING_MODIFIED,
            booking_modified_payload(locked, previous=previous),
            actor,
        )
    return locked


def _lock_for_transition(booking: Booking, to_status: str) -> Booking:
    """The booking's row, locked, once it is known it may become ``to_status``.

    Call inside the service's transaction.
    """
    locked = Booking.objects.select_for_update().get(pk=booking.pk)
    if to_status not in TRANSITIONS[locked.status]:
        raise BookingError(
            "invalid_transition",
            f"A {locked.get_status_display().lower()} booking cannot become "
            f"{BookingStatus(to_status).label.lower()}.",
        )
    return locked


def booking_set_external_reference(
    *, booking: Booking, external_reference: str, actor: str = ""
) -> Booking:
    """The channel's own reference for the booking: a ``booking.modified`` event.

    The stay is unchanged; the payload and its ``previous`` carry the new and the old
    reference. Setting the reference it already has changes nothing and emits nothing.
    """
    with transaction.atomic():
        locked = Booking.objects.select_for_update().get(pk=booking.pk)
        if locked.external_reference == external_reference:
            return locked
        previous = booking_snapshot(locked)
        locked.external_reference = external_reference
        locked.save(update_fields=["external_reference", "updated_at"])
        _emit(locked, BOOKING_MODIFIED, booking_modified_payload(locked, previous=previous), actor)
    return locked


def _transition(
    booking: Booking,
    to_status: str,
    event_type: str,
    actor: str,
    payload: Callable[[Booking], BookingSnapshot],
) -> Booking:
    with transaction.atomic():
        locked = _lock_for_transition(booking, to_status)
        locked.status = to_status
        locked.save(update_fields=["status", "updated_at"])
        _emit(locked, event_type, payload(locked), actor)
    return locked


def booking_confirm(*, booking: Booking, actor: str = "") -> Booking:
    return _transition(
        booking, BookingStatus.CONFIRMED, BOOKING_CONFIRMED, actor, booking_confirmed_payload
    )


def booking_cancellation_terms(*, booking: Booking, on: date | None = None) -> CancellationTerms:
    """The terms cancelling ``booking`` on ``on`` (default: today, property-local) fixes.

    The property's policy; but a request to book that was never accepted owes nothing
    (no fee, all refunded): nobody was asked to pay for it.
    """
    today = on or timezone.localdate(timezone=booking.property.timezone)
    terms = cancellation_terms(
        property=booking.property,
        check_in=booking.check_in,
        total=booking.total - booking.retained_amount,
        on=today,
    )
    if booking.status == BookingStatus.REQUESTED:
        return replace(terms, fee=Decimal("0.00"), refund_percent=100)
    # What earlier changes kept under the policy stays kept.
    return replace(terms, fee=terms.fee + booking.retained_amount)


def booking_cancel(*, booking: Booking, reason: str = "", actor: str = "") -> Booking:
    """Cancel; the policy's terms are fixed now, written on the booking and carried in the event.

    The fee is a column of the booking (``cancellation_fee``) and in the event's
    payload; handlers (refund, accounting) read the terms from the payload, so they
    give the same result whenever they run. A request to book that was never accepted
    owes no fee, whatever the policy: nothing was asked to be paid for it.
    """
    return _cancel(booking, reason=reason, declined="", actor=actor)


def booking_decline(
    *, booking: Booking, reason: str = DeclineReason.HOST, actor: str = ""
) -> Booking:
    """Do not accept a request to book: the host's answer, or its expiry (``DeclineReason``).

    A ``booking.cancelled`` event whose cancellation carries ``declined`` (the guest is
    told their request was not accepted) and no fee; the reason is recorded on the
    booking. Only a requested booking can be declined (a confirmed one is cancelled).
    """
    why = DeclineReason(reason)
    return _cancel(booking, reason=why.label, declined=why.value, actor=actor)


def _cancel(booking: Booking, *, reason: str, declined: str, actor: str) -> Booking:
    with transaction.atomic():
        locked = _lock_for_transition(booking, BookingStatus.CANCELLED)
        if declined and locked.status != BookingStatus.REQUESTED:
            raise BookingError(
                "not_a_request",
                f"Only a request can be declined; this booking is "
                f"{locked.get_status_display().lower()}.",
            )
        terms = booking_cancellation_terms(booking=locked)
        locked.status = BookingStatus.CANCELLED
        locked.cancellation_reason = reason
        locked.cancellation_fee = terms.fee
        locked.save(
            update_fields=["status", "cancellation_reason", "cancellation_fee", "updated_at"]
        )
        payload = booking_cancelled_payload(
            locked,
            policy=terms.policy,
            days_before=terms.days_before,
            refund_percent=terms.refund_percent,
            declined=declined,
        )
        _emit(locked, BOOKING_CANCELLED, payload, actor)
    return locked


def booking_check_in(*, booking: Booking, actor: str = "") -> Booking:
    return _transition(
        booking, BookingStatus.CHECKED_IN, BOOKING_CHECKED_IN, actor, booking_checked_in_payload
    )


def booking_check_out(*, booking: Booking, actor: str = "") -> Booking:
    return _transition(
        booking, BookingStatus.CHECKED_OUT, BOOKING_CHECKED_OUT, actor, booking_checked_out_payload
    )


def booking_mark_no_show(*, booking: Booking, actor: str = "") -> Booking:
    return _transition(
        booking, BookingStatus.NO_SHOW, BOOKING_NO_SHOW, actor, booking_no_show_payload
    )
