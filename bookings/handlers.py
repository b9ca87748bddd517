"""Event handlers of the bookings app."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, Literal, cast

from django.utils import timezone

from bookings.choices import OCCUPYING_STATUSES, CalendarEntryKind, LedgerKind
from bookings.events import (
    BLOCK_EVENTS,
    BOOKING_CANCELLED,
    BOOKING_CONFIRMED,
    BOOKING_CREATED,
    BOOKING_EVENTS,
    BOOKING_MODIFIED,
    PAYMENT_RECEIVED,
    REFUND_COMPLETED,
    BlockSnapshot,
    BookingCancelled,
    BookingConfirmed,
    BookingCreated,
    BookingModified,
    BookingSnapshot,
    MoneySnapshot,
    PaymentReceived,
    RefundCompleted,
)
from bookings.models import Booking, CalendarEntry, LedgerEntry
from bookings.services import payments_settle
from pms.db_inserts import insert_unless_exists
from pms.models import DomainEvent
from pms.pipeline.registry import event_handler


def _apply_span(event: DomainEvent, *, source_key: str, span: dict[str, Any]) -> None:
    """Make the calendar entry ``source_key`` equal to ``span`` unless a newer event won.

    Runs under the delivery's row lock; the entry row is locked too, so two
    events of one aggregate applied concurrently are serialised, and the
    sequence check makes the result independent of arrival order.
    """
    # The first event of an aggregate inserts its entry in one statement (a later one
    # finds it and locks it); get_or_create took four inside the delivery's transaction.
    new = CalendarEntry(tenant_id=event.tenant_id, source_key=source_key, sequence=event.sequence)
    for name, value in span.items():
        setattr(new, name, value)
    if insert_unless_exists(new, unique_field="source_key"):
        return  # the new row holds this event
    entry = CalendarEntry.objects.select_for_update().get(source_key=source_key)
    if event.sequence <= entry.sequence:
        return  # an older event arrived late
    for name, value in span.items():
        setattr(entry, name, value)
    entry.sequence = event.sequence
    entry.save(update_fields=[*span, "sequence", "updated_at"])


@event_handler(*BOOKING_EVENTS, queue="bookings", name="bookings.calendar")
def calendar_apply_booking_event(event: DomainEvent) -> None:
    snapshot = cast(BookingSnapshot, event.payload)
    _apply_span(
        event,
        source_key=f"booking:{snapshot['booking_id']}",
        span={
            "property_id": snapshot["property_id"],
            "kind": CalendarEntryKind.BOOKING,
            "booking_id": snapshot["booking_id"],
            "start": date.fromisoformat(snapshot["check_in"]),
            "end": date.fromisoformat(snapshot["check_out"]),
            "active": snapshot["status"] in OCCUPYING_STATUSES,
            "label": snapshot.get("reference", ""),
        },
    )


@event_handler(*BLOCK_EVENTS, queue="bookings", name="bookings.calendar_blocks")
def calendar_apply_block_event(event: DomainEvent) -> None:
    snapshot = cast(BlockSnapshot, event.payload)
    _apply_span(
        event,
        source_key=f"block:{snapshot['block_id']}",
        span={
            "property_id": snapshot["property_id"],
            "kind": CalendarEntryKind.BLOCK,
            "start": date.fromisoformat(snapshot["start"]),
            "end": date.fromisoformat(snapshot["end"]),
            "active": snapshot["is_active"],
            "label": snapshot.get("label") or "blocked",
        },
    )


# --- Payments (queue: payments) ------------------------------------------------------


@event_handler(
    BOOKING_CREATED,
    BOOKING_CONFIRMED,
    BOOKING_MODIFIED,
    queue="payments",
    name="bookings.payment_request",
)
def request_payment_for_the_stay(event: DomainEvent) -> None:
    """A booking made with us (API or admin) asks the guest for its total; a change of dates
    or guests asks for the difference, or cancels and re-asks, or refunds (the service).
    A request to book asks nothing until it is accepted (``booking.confirmed``); the
    service settles from the current state, so the total is asked once whichever of
    the two events is handled first."""
    payload = cast(BookingCreated | BookingConfirmed | BookingModified, event.payload)
    payments_settle(booking_id=payload["booking_id"])


@event_handler(BOOKING_CANCELLED, PAYMENT_RECEIVED, queue="payments", name="bookings.refunds")
def reconcile_refunds(event: DomainEvent) -> None:
    """A cancelled booking refunds what was paid above the cancellation fee; money received
    above an active booking's total is refunded too (see the service)."""
    # Both payloads (BookingCancelled, PaymentReceived) carry the booking's id.
    payload = cast(BookingCancelled | PaymentReceived, event.payload)
    payments_settle(booking_id=payload["booking_id"])


# --- Accounting (queue: accounting) --------------------------------------------------

ChargePart = Literal["accommodation_amount", "cleaning_amount", "tax_amount"]
CHARGE_PARTS: tuple[tuple[str, ChargePart], ...] = (
    (LedgerKind.ACCOMMODATION, "accommodation_amount"),
    (LedgerKind.CLEANING, "cleaning_amount"),
    (LedgerKind.TAX, "tax_amount"),
)


def _amount(snapshot: BookingSnapshot, part: ChargePart) -> Decimal:
    return Decimal(snapshot[part])


def _ledger_lines(event: DomainEvent) -> list[tuple[str, Decimal, str]]:
    """The entries an event books: a pure function of its payload.

    Because every event carries what it changed (modifications carry the
    previous amounts, cancellations the amounts they reverse), the ledger's sum
    is the same whatever order the events are applied in.
    """
    kind = event.event_type
    if kind == BOOKING_CREATED:
        created = cast(BookingCreated, event.payload)
        return [(k, _amount(created, f), "booked") for k, f in CHARGE_PARTS]
    if kind == BOOKING_MODIFIED:
        modified = cast(BookingModified, event.payload)
        previous = modified["previous"]
        return [
            (k, _amount(modified, f) - _amount(previous, f), "stay changed")
            for k, f in CHARGE_PARTS
        ]
    if kind == BOOKING_CANCELLED:
        cancelled = cast(BookingCancelled, event.payload)
        fee = Decimal(cancelled["cancellation"]["fee"])
        lines = [(k, -_amount(cancelled, f), "cancelled") for k, f in CHARGE_PARTS]
        policy = cancelled["cancellation"]["policy"]
        return [*lines, (LedgerKind.CANCELLATION_FEE, fee, f"{policy} policy fee")]
    if kind == PAYMENT_RECEIVED:
        payment = cast(PaymentReceived, event.payload)
        return [(LedgerKind.PAYMENT, -Decimal(payment["amount"]), "payment received")]
    if kind == REFUND_COMPLETED:
        refund = cast(RefundCompleted, event.payload)
        return [(LedgerKind.REFUND, Decimal(refund["amount"]), "refund paid")]
    return []


@event_handler(
    BOOKING_CREATED,
    BOOKING_MODIFIED,
    BOOKING_CANCELLED,
    PAYMENT_RECEIVED,
    REFUND_COMPLETED,
    queue="accounting",
    name="bookings.accounting",
)
def book_ledger_entries(event: DomainEvent) -> None:
    lines = [line for line in _ledger_lines(event) if line[1] != 0]
    if not lines:
        return
    # Every event it subscribes to carries the booking's id.
    payload = cast(BookingSnapshot | MoneySnapshot, event.payload)
    booking = Booking.objects.select_related("property").get(pk=payload["booking_id"])
    entry_date = timezone.localtime(event.created_at, booking.property.timezone).date()
    LedgerEntry.objects.bulk_create(
        [
            LedgerEntry(
                tenant_id=event.tenant_id,
                booking=booking,
                property=booking.property,
                event=event,
                kind=kind,
                amount=amount,
                currency=booking.currency,
                entry_date=entry_date,
                description=description,
            )
            for kind, amount, description in lines
        ],
        # (event, kind) is unique: a second delivery of the same event books nothing.
        ignore_conflicts=True,
    )
