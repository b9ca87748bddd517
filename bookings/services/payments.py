"""Payments and refunds. Each write emits an event the accounting handler books."""

from __future__ import annotations

from decimal import Decimal
from typing import cast

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from bookings.choices import BookingStatus, PaymentMethod, PaymentStatus, RefundStatus
from bookings.errors import BookingError
from bookings.events import (
    BOOKING_AGGREGATE,
    BOOKING_CANCELLED,
    PAYMENT_AGGREGATE,
    PAYMENT_RECEIVED,
    PAYMENT_REQUESTED,
    REFUND_AGGREGATE,
    REFUND_COMPLETED,
    REFUND_REQUESTED,
    BookingCancelled,
    MoneySnapshot,
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
    refund = Refund.objects.create(
        tenant_id=booking.tenant_id,
        booking=booking,
        amount=owed,
        currency=booking.currency,
        reason=f"cancellation ({cancellation['policy']} policy)",
    )
    answer = get_provider("manual").start_refund(refund)
    refund.provider_reference = answer.reference
    refund.save(update_fields=["provider_reference"])
    _emit(refund, REFUND_REQUESTED, refund_requested_payload(refund), "system:refunds")
    return refund
