"""Payments and refunds. Each write emits an event the accounting handler books."""

from __future__ import annotations

from decimal import Decimal
from typing import cast

from django.db import transaction
from django.db.models import QuerySet, Sum
from django.utils import timezone

from bookings.choices import BookingStatus, PaymentMethod, PaymentStatus, RefundStatus
from bookings.errors import BookingError
from bookings.events import (
    BOOKING_AGGREGATE,
    BOOKING_CANCELLED,
    PAYMENT_AGGREGATE,
    PAYMENT_CANCELLED,
    PAYMENT_RECEIVED,
    PAYMENT_REQUESTED,
    REFUND_AGGREGATE,
    REFUND_COMPLETED,
    REFUND_REQUESTED,
    BookingCancelled,
    MoneySnapshot,
    payment_cancelled_payload,
    payment_received_payload,
    payment_requested_payload,
    refund_completed_payload,
    refund_requested_payload,
)
from bookings.models import Booking, Payment, Refund
from bookings.payment_providers import get_provider
from pms.models import DomainEvent
from pms.pipeline.publishing import emit_event


def _emit(obj: Payment | Refund, event_type: str, payload: MoneySnapshot, actor: str) -> None:
    emit_event(
        tenant_id=obj.tenant_id,
        aggregate_type=PAYMENT_AGGREGATE if isinstance(obj, Payment) else REFUND_AGGREGATE,
        aggregate_id=obj.pk,
        event_type=event_type,
        payload=dict(payload),
        actor=actor,
    )


def payment_request(
    *,
    booking: Booking,
    amount: Decimal,
    method: str = PaymentMethod.BANK_TRANSFER,
    provider: str = "manual",
    actor: str = "",
) -> Payment:
    if amount <= 0:
        raise BookingError("invalid_amount", "A payment must be positive.")
    with transaction.atomic():
        payment = Payment.objects.create(
            tenant_id=booking.tenant_id,
            booking=booking,
            amount=amount,
            currency=booking.currency,
            method=method,
            provider=provider,
        )
        answer = get_provider(provider).start_payment(payment)
        payment.provider_reference = answer.reference
        payment.save(update_fields=["provider_reference"])
        payload = payment_requested_payload(payment, instructions=answer.instructions)
        _emit(payment, PAYMENT_REQUESTED, payload, actor)
    return payment


def payment_mark_received(*, payment: Payment, actor: str = "") -> Payment:
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        if locked.status != PaymentStatus.PENDING:
            raise BookingError("invalid_transition", f"This payment is already {locked.status}.")
        locked.status = PaymentStatus.RECEIVED
        locked.received_at = timezone.now()
        locked.save(update_fields=["status", "received_at"])
        _emit(locked, PAYMENT_RECEIVED, payment_received_payload(locked), actor)
    return locked


def refund_mark_completed(*, refund: Refund, actor: str = "") -> Refund:
    with transaction.atomic():
        locked = Refund.objects.select_for_update().get(pk=refund.pk)
        if locked.status != RefundStatus.PENDING:
            raise BookingError("invalid_transition", "This refund is already completed.")
        locked.status = RefundStatus.COMPLETED
        locked.completed_at = timezone.now()
        locked.save(update_fields=["status", "completed_at"])
        _emit(locked, REFUND_COMPLETED, refund_completed_payload(locked), actor)
    return locked


# Bookings whose money we collect (channel bookings are paid through the channel).
PAID_HERE_SOURCES = ("direct", "admin")
SETTLE_ACTOR = "system:payments"


def _sum(queryset: QuerySet[Payment] | QuerySet[Refund]) -> Decimal:
    return queryset.aggregate(s=Sum("amount"))["s"] or Decimal("0")


def payments_settle(*, booking_id: int) -> None:
    """Make what the guest is asked to pay follow the booking's total. Idempotent.

    Computed from the current state under the booking's row lock, so it is right
    whatever order the events arrive in and a redelivery changes nothing:

    - an active booking paid here owes its total: ``due = total - (received - refunds)``.
      If the pending requests already ask for exactly ``due``, nothing happens. If they
      ask for less, the difference is requested (a stay made longer or dearer). If they
      ask for more (a stay made shorter), they are cancelled and ``due`` is requested
      afresh, or, when more was received than the total, the excess is refunded;
    - a cancelled booking refunds what was received above its fee (``refunds_reconcile``);
    - a request to book owes nothing until the host accepts it (``booking.confirmed``
      settles it then; a declined request never asks).

    Call inside a transaction (handlers run in one).
    """
    booking = Booking.objects.select_for_update().get(pk=booking_id)
    if booking.status == BookingStatus.CANCELLED:
        refunds_reconcile(booking_id=booking_id)
        return
    if booking.source not in PAID_HERE_SOURCES or booking.status == BookingStatus.REQUESTED:
        return
    received = _sum(booking.payments.filter(status=PaymentStatus.RECEIVED))
    refunded = _sum(booking.refunds.all())
    pending = list(booking.payments.filter(status=PaymentStatus.PENDING).order_by("pk"))
    asked = sum((payment.amount for payment in pending), Decimal("0"))
    due = booking.total - (received - refunded)
    if due == asked:
        return
    if due > asked:
        payment_request(booking=booking, amount=due - asked, actor=SETTLE_ACTOR)
        return
    for payment in pending:
        payment.status = PaymentStatus.CANCELLED
        payment.save(update_fields=["status"])
        _emit(
            payment,
            PAYMENT_CANCELLED,
            payment_cancelled_payload(payment, reason="the stay changed: replaced"),
            SETTLE_ACTOR,
        )
    if due > 0:
        payment_request(booking=booking, amount=due, actor=SETTLE_ACTOR)
    elif due < 0:
        _refund(booking, -due, reason="the stay changed: paid above the new total")


def _refund(booking: Booking, amount: Decimal, *, reason: str) -> Refund:
    refund = Refund.objects.create(
        tenant_id=booking.tenant_id,
        booking=booking,
        amount=amount,
        currency=booking.currency,
        reason=reason[:200],
    )
    answer = get_provider("manual").start_refund(refund)
    refund.provider_reference = answer.reference
    refund.save(update_fields=["provider_reference"])
    _emit(refund, REFUND_REQUESTED, refund_requested_payload(refund), "system:refunds")
    return refund


def refunds_reconcile(*, booking_id: int) -> Refund | None:
    """Create the refund a cancelled booking still owes the guest, if any.

    Owed = money received - the cancellation fee - refunds already created.
    Computed from the current state under the booking's row lock, so it is
    right whatever order cancellation and payments arrive in, and running it
    twice creates nothing the second time. Call inside a transaction.
    """
    booking = Booking.objects.select_for_update().get(pk=booking_id)
    if booking.status != BookingStatus.CANCELLED:
        return None
    cancel_event = (
        DomainEvent.objects.filter(
            aggregate_type=BOOKING_AGGREGATE,
            aggregate_id=str(booking.pk),
            event_type=BOOKING_CANCELLED,
        )
        .order_by("-sequence")
        .first()
    )
    if cancel_event is None:
        return None
    cancellation = cast(BookingCancelled, cancel_event.payload)["cancellation"]
    fee = Decimal(cancellation["fee"])
    received = booking.payments.filter(status=PaymentStatus.RECEIVED).aggregate(s=Sum("amount"))[
        "s"
    ]
    refunded = booking.refunds.aggregate(s=Sum("amount"))["s"]
    owed = (received or Decimal("0")) - fee - (refunded or Decimal("0"))
    if owed <= 0:
        return None
    return _refund(booking, owed, reason=f"cancellation ({cancellation['policy']} policy)")
