"""Payment providers: the interface, and the one that runs here (manual bank transfer).

A provider starts a payment (returns the reference the guest quotes and what to
tell them) and executes refunds. The manual provider needs a person: the
manager confirms a transfer arrived, or that a refund was sent, in the admin.
A card provider would implement the same two calls and confirm by webhook.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from django.conf import settings

from bookings.models import Payment, Refund


@dataclass(frozen=True)
class ProviderAnswer:
    reference: str
    instructions: str = ""
    completed: bool = False  # True when the provider settled it on the spot


class PaymentProvider(Protocol):
    name: str

    def start_payment(self, payment: Payment) -> ProviderAnswer: ...

    def start_refund(self, refund: Refund) -> ProviderAnswer: ...


class ManualBankTransferProvider:
    name = "manual"

    def start_payment(self, payment: Payment) -> ProviderAnswer:
        reference = f"PMS-{payment.booking.reference}-{payment.pk}"
        instructions = (
            f"Please transfer {payment.amount} {payment.currency} "
            f"to {settings.PAYMENT_BANK_ACCOUNT} quoting {reference}."
        )
        return ProviderAnswer(reference=reference, instructions=instructions)

    def start_refund(self, refund: Refund) -> ProviderAnswer:
        # The manager sends the transfer and marks the refund completed in the admin.
        return ProviderAnswer(reference=f"PMS-R-{refund.booking.reference}-{refund.pk}")


_PROVIDERS: dict[str, PaymentProvider] = {"manual": ManualBankTransferProvider()}


def get_provider(name: str) -> PaymentProvider:
    try:
        return _PROVIDERS[name]
    except KeyError:
        raise ValueError(f"unknown payment provider {name!r}") from None
