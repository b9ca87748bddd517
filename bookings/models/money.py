"""Payments, refunds and the accounting ledger."""

from __future__ import annotations

from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models

from bookings.choices import LedgerKind, PaymentMethod, PaymentStatus, RefundStatus
from bookings.models.booking import Booking
from pms.models import DomainEvent, Property, currency_code
from tenants.models import TenantOwned


class Payment(TenantOwned):
    booking = models.ForeignKey(Booking, on_delete=models.PROTECT, related_name="payments")
    amount = models.DecimalField(
        max_digits=12, decimal_places=2, validators=[MinValueValidator(Decimal("0.01"))]
    )
    currency = models.CharField(max_length=3, validators=[currency_code])
    method = models.CharField(
        max_length=20, choices=PaymentMethod.choices, default=PaymentMethod.BANK_TRANSFER
    )
    provider = models.CharField(max_length=30, default="manual")
    provider_reference = models.CharField(max_length=100, blank=True)
    status = models.CharField(
        max_length=20, choices=PaymentStatus.choices, default=PaymentStatus.PENDING
    )
    created_at = models.DateTimeField(auto_now_add=True)
    received_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            # One payment request per booking from the automatic handler; staff may add more.
            models.UniqueConstraint(
                fields=["booking", "provider_reference"],
                condition=~models.Q(provider_reference=""),
                name="payment_unique_reference",
            )
        ]

    def __str__(self) -> str:
        return f"{self.amount} {self.currency} for {self.booking.reference} ({self.status})"


class Refund(TenantOwned):
    booking = models.ForeignKey(Booking, on_delete=models.PROTECT, related_name="refunds")
    amount = models.DecimalField(
        max_digits=12, decimal_places=2, validators=[MinValueValidator(Decimal("0.01"))]
    )
    currency = models.CharField(max_length=3, validators=[currency_code])
    reason = models.CharField(max_length=200, blank=True)
    status = models.CharField(
        max_length=20, choices=RefundStatus.choices, default=RefundStatus.PENDING
    )
    provider_reference = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"refund {self.amount} {self.currency} for {self.booking.reference} ({self.status})"


class LedgerEntry(TenantOwned):
    """One accounting line, from the guest's side: charges positive, money received negative.

    The sum of a booking's entries is what the guest still owes (negative: we
    owe them). Each entry is tied to the event that caused it, unique per
    (event, kind), so a redelivered event never books twice.
    """

    booking = models.ForeignKey(Booking, on_delete=models.PROTECT, related_name="ledger_entries")
    property = models.ForeignKey(Property, on_delete=models.PROTECT, related_name="ledger_entries")
    event = models.ForeignKey(DomainEvent, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=20, choices=LedgerKind.choices)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, validators=[currency_code])
    entry_date = models.DateField(db_index=True)
    description = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "ledger entries"
        ordering = ["entry_date", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["event", "kind"], name="ledger_unique_event_kind")
        ]
        indexes = [models.Index(fields=["property", "entry_date"])]

    def __str__(self) -> str:
        return f"{self.entry_date} {self.get_kind_display()} {self.amount} {self.currency}"
