"""The bookings app's events: their names, their payloads and the builders that make them.

The services of this app emit them (``emit_event(event_type=BOOKING_CREATED,
payload=booking_created_payload(booking))``). Subscribers, in this app or any other,
import this module, never ``bookings.handlers``, services or tasks, and read a payload
through its type: ``payload = cast(BookingCancelled, event.payload)``.

A payload is the JSON stored in ``DomainEvent.payload``: plain ints and strings
(amounts as decimal strings, dates as ISO strings), so a TypedDict describes it
exactly and reading it back needs no parsing. Events already stored have these
shapes: a change here is a change of stored data.
"""

from __future__ import annotations

from typing import Final, Required, TypedDict

from bookings.models import Block, Booking, GuestMessage, Payment, Refund

# --- Aggregate types (DomainEvent.aggregate_type) ----------------------------------------

BOOKING_AGGREGATE: Final = "booking"
BLOCK_AGGREGATE: Final = "block"
PAYMENT_AGGREGATE: Final = "payment"
REFUND_AGGREGATE: Final = "refund"
BOOKING_THREAD_AGGREGATE: Final = "booking_thread"

# --- Event types -------------------------------------------------------------------------

BOOKING_CREATED: Final = "booking.created"
BOOKING_CONFIRMED: Final = "booking.confirmed"
BOOKING_MODIFIED: Final = "booking.modified"
BOOKING_CANCELLED: Final = "booking.cancelled"
BOOKING_CHECKED_IN: Final = "booking.checked_in"
BOOKING_CHECKED_OUT: Final = "booking.checked_out"
BOOKING_NO_SHOW: Final = "booking.no_show"

BLOCK_CREATED: Final = "block.created"
BLOCK_MODIFIED: Final = "block.modified"
BLOCK_CANCELLED: Final = "block.cancelled"

PAYMENT_REQUESTED: Final = "payment.requested"
PAYMENT_RECEIVED: Final = "payment.received"
PAYMENT_CANCELLED: Final = "payment.cancelled"
REFUND_REQUESTED: Final = "refund.requested"
REFUND_COMPLETED: Final = "refund.completed"

MESSAGE_POSTED: Final = "message.posted"

BOOKING_EVENTS: Final = (
    BOOKING_CREATED,
    BOOKING_CONFIRMED,
    BOOKING_MODIFIED,
    BOOKING_CANCELLED,
    BOOKING_CHECKED_IN,
    BOOKING_CHECKED_OUT,
    BOOKING_NO_SHOW,
)
BLOCK_EVENTS: Final = (BLOCK_CREATED, BLOCK_MODIFIED, BLOCK_CANCELLED)
MONEY_EVENTS: Final = (
    PAYMENT_REQUESTED,
    PAYMENT_RECEIVED,
    PAYMENT_CANCELLED,
    REFUND_REQUESTED,
    REFUND_COMPLETED,
)
EVENT_TYPES: Final = frozenset((*BOOKING_EVENTS, *BLOCK_EVENTS, *MONEY_EVENTS, MESSAGE_POSTED))

# --- Payloads ----------------------------------------------------------------------------


class BookingSnapshot(TypedDict):
    """The booking's whole state after the change: what every ``booking.*`` event carries."""

    booking_id: int
    reference: str
    property_id: int
    guest_id: int
    check_in: str  # ISO date
    check_out: str  # ISO date, exclusive
    status: str  # BookingStatus
    guests_count: int
    accommodation_amount: str  # decimal
    cleaning_amount: str
    tax_amount: str
    total: str
    currency: str
    source: str  # BookingSource
    external_reference: str  # the channel's own reference ("" when none)


class Cancellation(TypedDict):
    """The policy's terms, fixed when the booking was cancelled."""

    policy: str  # CancellationPolicy
    days_before: int
    refund_percent: int
    fee: str  # decimal: what the guest still owes of the total (also Booking.cancellation_fee)
    reason: str
    # A request to book that was not accepted: DeclineReason ("host", "expired"); "" for
    # any other cancellation. Events stored before request to book lack it: read with .get.
    declined: str


class BookingCreated(BookingSnapshot):
    pass


class BookingConfirmed(BookingSnapshot):
    pass


class BookingModified(BookingSnapshot):
    previous: BookingSnapshot  # the state before the change (its amounts are reversed)


class BookingCancelled(BookingSnapshot):
    cancellation: Cancellation


class BookingCheckedIn(BookingSnapshot):
    pass


class BookingCheckedOut(BookingSnapshot):
    pass


class BookingNoShow(BookingSnapshot):
    pass


class BookingChange(BookingSnapshot, total=False):
    """Any ``booking.*`` payload, for a subscriber to several: what only some of them carry."""

    previous: BookingSnapshot  # booking.modified
    cancellation: Cancellation  # booking.cancelled


class CalendarChange(TypedDict, total=False):
    """Any ``booking.*`` or ``block.*`` payload, for a subscriber to both: what they share."""

    property_id: Required[int]
    source: Required[str]
    previous: BookingSnapshot  # booking.modified


class BlockSnapshot(TypedDict):
    """The block's whole state after the change: what every ``block.*`` event carries."""

    block_id: int
    property_id: int
    start: str  # ISO date
    end: str  # ISO date, exclusive
    label: str
    source: str
    external_uid: str
    is_active: bool


class BlockCreated(BlockSnapshot):
    pass


class BlockModified(BlockSnapshot):
    pass


class BlockCancelled(BlockSnapshot):
    pass


class MoneySnapshot(TypedDict):
    """A payment or refund after the change (``id`` is the Payment's or the Refund's)."""

    id: int
    booking_id: int
    amount: str  # decimal
    currency: str
    status: str  # PaymentStatus or RefundStatus


class PaymentRequested(MoneySnapshot):
    instructions: str  # the provider's, shown to the guest


class PaymentReceived(MoneySnapshot):
    pass


class PaymentCancelled(MoneySnapshot):
    reason: str


class RefundRequested(MoneySnapshot):
    pass


class RefundCompleted(MoneySnapshot):
    pass


class MessagePosted(TypedDict):
    message_id: int
    booking_id: int
    sender: str  # MessageSender
    author: str


# --- Builders: the payload from the model, called by the services that emit --------------


def booking_snapshot(booking: Booking) -> BookingSnapshot:
    return {
        "booking_id": booking.pk,
        "reference": booking.reference,
        "property_id": booking.property_id,
        "guest_id": booking.guest_id,
        "check_in": booking.check_in.isoformat(),
        "check_out": booking.check_out.isoformat(),
        "status": booking.status,
        "guests_count": booking.guests_count,
        "accommodation_amount": str(booking.accommodation_amount),
        "cleaning_amount": str(booking.cleaning_amount),
        "tax_amount": str(booking.tax_amount),
        "total": str(booking.total),
        "currency": booking.currency,
        "source": booking.source,
        "external_reference": booking.external_reference,
    }


def booking_created_payload(booking: Booking) -> BookingCreated:
    return BookingCreated(**booking_snapshot(booking))


def booking_confirmed_payload(booking: Booking) -> BookingConfirmed:
    return BookingConfirmed(**booking_snapshot(booking))


def booking_modified_payload(booking: Booking, *, previous: BookingSnapshot) -> BookingModified:
    return BookingModified(**booking_snapshot(booking), previous=previous)


def booking_cancelled_payload(
    booking: Booking, *, policy: str, days_before: int, refund_percent: int, declined: str = ""
) -> BookingCancelled:
    """After the cancel service wrote the fee and the reason on the booking."""
    if booking.cancellation_fee is None:
        raise ValueError(f"booking {booking.pk} is cancelled without its fee")
    return BookingCancelled(
        **booking_snapshot(booking),
        cancellation={
            "policy": policy,
            "days_before": days_before,
            "refund_percent": refund_percent,
            "fee": str(booking.cancellation_fee),
            "reason": booking.cancellation_reason,
            "declined": declined,
        },
    )


def booking_checked_in_payload(booking: Booking) -> BookingCheckedIn:
    return BookingCheckedIn(**booking_snapshot(booking))


def booking_checked_out_payload(booking: Booking) -> BookingCheckedOut:
    return BookingCheckedOut(**booking_snapshot(booking))


def booking_no_show_payload(booking: Booking) -> BookingNoShow:
    return BookingNoShow(**booking_snapshot(booking))


def block_snapshot(block: Block) -> BlockSnapshot:
    return {
        "block_id": block.pk,
        "property_id": block.property_id,
        "start": block.start.isoformat(),
        "end": block.end.isoformat(),
        "label": block.label,
        "source": block.source,
        "external_uid": block.external_uid,
        "is_active": block.is_active,
    }


def block_created_payload(block: Block) -> BlockCreated:
    return BlockCreated(**block_snapshot(block))


def block_modified_payload(block: Block) -> BlockModified:
    return BlockModified(**block_snapshot(block))


def block_cancelled_payload(block: Block) -> BlockCancelled:
    return BlockCancelled(**block_snapshot(block))


def money_snapshot(obj: Payment | Refund) -> MoneySnapshot:
    return {
        "id": obj.pk,
        "booking_id": obj.booking_id,
        "amount": str(obj.amount),
        "currency": obj.currency,
        "status": obj.status,
    }


def payment_requested_payload(payment: Payment, *, instructions: str) -> PaymentRequested:
    return PaymentRequested(**money_snapshot(payment), instructions=instructions)


def payment_received_payload(payment: Payment) -> PaymentReceived:
    return PaymentReceived(**money_snapshot(payment))


def payment_cancelled_payload(payment: Payment, *, reason: str) -> PaymentCancelled:
    return PaymentCancelled(**money_snapshot(payment), reason=reason)


def refund_requested_payload(refund: Refund) -> RefundRequested:
    return RefundRequested(**money_snapshot(refund))


def refund_completed_payload(refund: Refund) -> RefundCompleted:
    return RefundCompleted(**money_snapshot(refund))


def message_posted_payload(message: GuestMessage) -> MessagePosted:
    return {
        "message_id": message.pk,
        "booking_id": message.booking_id,
        "sender": message.sender,
        "author": message.author,
    }


# What each event type carries: the catalogue's table of contents (checked by the tests).
PAYLOAD_TYPES: Final[dict[str, type]] = {
    BOOKING_CREATED: BookingCreated,
    BOOKING_CONFIRMED: BookingConfirmed,
    BOOKING_MODIFIED: BookingModified,
    BOOKING_CANCELLED: BookingCancelled,
    BOOKING_CHECKED_IN: BookingCheckedIn,
    BOOKING_CHECKED_OUT: BookingCheckedOut,
    BOOKING_NO_SHOW: BookingNoShow,
    BLOCK_CREATED: BlockCreated,
    BLOCK_MODIFIED: BlockModified,
    BLOCK_CANCELLED: BlockCancelled,
    PAYMENT_REQUESTED: PaymentRequested,
    PAYMENT_RECEIVED: PaymentReceived,
    PAYMENT_CANCELLED: PaymentCancelled,
    REFUND_REQUESTED: RefundRequested,
    REFUND_COMPLETED: RefundCompleted,
    MESSAGE_POSTED: MessagePosted,
}
