"""A tenant with at least one row of every tenant-owned model, built through real flows.

Rows come from the services and handlers a tenant really uses (a booking through
its whole pipeline, payments, a refund, messages, a block...). Any tenant-owned
model those flows do not reach gets a row from model_bakery with its tenant and
tenant-owned foreign keys pointing at this tenant's rows, so a model added
tomorrow is covered by the isolation matrix without anyone remembering to.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.apps import apps
from django.db import models
from django.utils import timezone
from model_bakery import baker

from bookings.choices import TaxKind
from bookings.models import PropertyTax, RateOverride, Season
from bookings.services import (
    block_create,
    booking_cancel,
    booking_create,
    guest_message_post,
    guest_token_issue,
    payment_mark_received,
)
from pms.choices import DeliveryStatus
from pms.models import EventDelivery, FailedTask
from pms.pipeline.delivery import run_delivery
from pms.pipeline.registry import get_handler
from tenants.models import Tenant
from tenants.scoping import is_tenant_owned
from tests.factories import GuestFactory, PropertyFactory


def run_pending_deliveries() -> None:
    """Apply every pending delivery in-process (the outer test transaction never commits)."""
    for _ in range(10):
        pending = list(
            EventDelivery.objects.filter(status=DeliveryStatus.PENDING).values_list("pk", "handler")
        )
        if not pending:
            return
        for delivery_id, name in pending:
            handler = get_handler(name)
            assert handler is not None, f"no handler {name}"
            run_delivery(handler, delivery_id)


def build_world(tenant: Tenant, marker: str) -> dict[str, Any]:
    """Populate ``tenant``; every name a person would see contains ``marker``."""
    prop = PropertyFactory.create(
        tenant=tenant, name=f"{marker} Villa", slug=f"{marker.lower()}-villa"
    )
    guest = GuestFactory.create(
        tenant=tenant, name=f"{marker} Guest", email=f"{marker.lower()}@example.test"
    )
    start = date.today() + timedelta(days=60)
    kept = booking_create(
        tenant=tenant,
        property=prop,
        guest=guest,
        check_in=start,
        check_out=start + timedelta(days=3),
    )
    cancelled = booking_create(
        tenant=tenant,
        property=prop,
        guest=guest,
        check_in=start + timedelta(days=10),
        check_out=start + timedelta(days=12),
    )
    block_create(
        tenant=tenant,
        property=prop,
        start=start + timedelta(days=20),
        end=start + timedelta(days=22),
        label=f"{marker} owner stay",
    )
    RateOverride.objects.create(
        tenant=tenant, property=prop, date=start, nightly_rate=Decimal("321.00"), note=marker
    )
    Season.objects.create(
        tenant=tenant,
        property=prop,
        name=f"{marker} high season",
        start=start + timedelta(days=30),
        end=start + timedelta(days=60),
        nightly_rate=Decimal("222.00"),
        min_nights=3,
    )
    PropertyTax.objects.create(
        tenant=tenant,
        property=prop,
        name=f"{marker} city tax",
        kind=TaxKind.PER_GUEST_NIGHT,
        rate=Decimal("2.50"),
    )
    guest_token_issue(booking=kept)
    guest_message_post(booking=kept, sender="guest", body=f"{marker} asks about parking")
    run_pending_deliveries()  # calendar, ledger, payment requests, outbound messages...
    for payment in kept.payments.all():
        payment_mark_received(payment=payment)
    for payment in cancelled.payments.all():
        payment_mark_received(payment=payment)
    booking_cancel(booking=cancelled, reason=marker)
    run_pending_deliveries()  # refund, ledger reversal
    now = timezone.now()
    FailedTask.objects.create(
        task_id=f"{marker}-task",
        task_name="handlers.bookings.calendar",
        queue="bookings",
        args=[0],
        tenant=tenant,
        exception_class="pms.pipeline.errors.PermanentError",
        exception_message=f"{marker} failure",
        first_failed_at=now,
        last_failed_at=now,
    )
    fill_missing_models(tenant)
    return {"property": prop, "guest": guest, "bookings": [kept, cancelled]}


def tenant_owned_models() -> list[type[models.Model]]:
    return [m for m in apps.get_models() if is_tenant_owned(m)]


def fill_missing_models(tenant: Tenant) -> None:
    """Give ``tenant`` a row of every tenant-owned model the flows above did not create."""
    done: set[type[models.Model]] = set()

    def ensure(model: type[models.Model], depth: int = 0) -> models.Model | None:
        existing = model._default_manager.filter(tenant=tenant).first()
        if existing is not None or depth > 4:
            return existing
        overrides: dict[str, Any] = {"tenant": tenant}
        for field in model._meta.concrete_fields:
            related = getattr(field, "related_model", None)
            if (
                field.is_relation
                and field.name != "tenant"
                and isinstance(related, type)
                and is_tenant_owned(related)
            ):
                if related is model:
                    continue
                row = ensure(related, depth + 1)
                if row is None and not field.null:
                    return None
                overrides[field.name] = row
        done.add(model)
        return baker.make(model, **overrides)

    for model in tenant_owned_models():
        ensure(model)
