"""Event handlers of the bookings app."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from django.utils import timezone

from bookings.choices import OCCUPYING_STATUSES, CalendarEntryKind, LedgerKind
from bookings.models import Booking, CalendarEntry, LedgerEntry
from bookings.services import payment_request, refunds_reconcile
from pms.models import DomainEvent
from pms.pipeline.registry import event_handler

BOOKING_EVENTS = (
    "booking.created",
    "booking.confirmed",
    "booking.modified",
    "booking.cancelled",
    "booking.checked_in",
    "booking.checked_out",
    "booking.no_show",
)
BLOCK_EVENTS = ("block.created", "block.modified", "block.cancelled")


def _apply_span(event: DomainEvent, *, source_key: str, span: dict[str, Any]) -> None:
    """Make the calendar entry ``source_key`` equal to ``span`` unless a newer event won.

    Runs under the delivery's row lock; the entry row is locked too, so two
    events of one aggregate applied concurrently are serialised, and the
    sequence check makes the result independent of arrival order.
    """
    entry, created = CalendarEntry.objects.select_for_update().get_or_create(
        source_key=source_key,
        defaults={"tenant_id": event.tenant_id, "sequence": event.sequence, **span},
    )
    if created or event.sequence <= entry.sequence:
        return  # the new row already holds this event; or an older event arrived late
    for name, value in span.items():
        setattr(entry, name, value)
    entry.sequence = event.sequence
    entry.save(update_fields=[*span, "sequence", "updated_at"])


@event_handler(*BOOKING_EVENTS, queue="bookings", name="bookings.calendar")
def calendar_apply_booking_event(event: DomainEvent) -> None:
    snapshot = event.payload
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
    snapshot = event.payload
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

PAID_HERE_SOURCES = ("direct", "admin")  # channel bookings are paid through the channel


@event_handler("booking.created", queue="payments", name="bookings.payment_request")
def request_payment_for_new_booking(event: DomainEvent) -> None:
    """Ask the guest to pay a booking made with us (API or admin) through the provider."""
    snapshot = event.payload
    if snapshot.get("source") not in PAID_HERE_SOURCES or Decimal(snapshot["total"]) <= 0:
        return
    booking = Booking.objects.get(pk=snapshot["booking_id"])
    payment_request(booking=booking, amount=Decimal(snapshot["total"]), actor="system:payments")


@event_handler("booking.cancelled", "payment.received", queue="payments", name="bookings.refunds")
def reconcile_refunds(event: DomainEvent) -> None:
    """A cancelled booking refunds what was paid above the cancellation fee (see the service)."""
    refunds_reconcile(booking_id=event.payload["booking_id"])


# --- Accounting (queue: accounting) --------------------------------------------------

CHARGE_PARTS = (
    (LedgerKind.ACCOMMODATION, "accommodation_amount"),
    (LedgerKind.CLEANING, "cleaning_amount"),
    (LedgerKind.TAX, "tax_amount"),
)


def _ledger_lines(event: DomainEvent) -> list[tuple[str, Decimal, str]]:
    """The entries an event books: a pure function of its payload.

    Because every event carries what it changed (modifications carry the
    previous amounts, cancellations the amounts they reverse), the ledger's sum
    is the same whatever order the events are applied in.
    """
    payload, kind = event.payload, event.event_type
    if kind == "booking.created":
        return [(k, Decimal(payload[f]), "booked") for k, f in CHARGE_PARTS]
    if kind == "booking.modified":
        previous = payload["previous"]
        return [
            (k, Decimal(payload[f]) - Decimal(previous[f]), "stay changed") for k, f in CHARGE_PARTS
        ]
    if kind == "booking.cancelled":
        fee = Decimal(payload["cancellation"]["fee"])
        lines = [(k, -Decimal(payload[f]), "cancelled") for k, f in CHARGE_PARTS]
        policy = payload["cancellation"]["policy"]
        return [*lines, (LedgerKind.CANCELLATION_FEE, fee, f"{policy} policy fee")]
    if kind == "payment.received":
        return [(LedgerKind.PAYMENT, -Decimal(payload["amount"]), "payment received")]
    if kind == "refund.completed":
        return [(LedgerKind.REFUND, Decimal(payload["amount"]), "refund paid")]
    return []


@event_handler(
    "booking.created",
    "booking.modified",
    "booking.cancelled",
    "payment.received",
    "refund.completed",
    queue="accounting",
    name="bookings.accounting",
)
def book_ledger_entries(event: DomainEvent) -> None:
    lines = [line for line in _ledger_lines(event) if line[1] != 0]
    if not lines:
        return
    booking = Booking.objects.select_related("property").get(pk=event.payload["booking_id"])
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
