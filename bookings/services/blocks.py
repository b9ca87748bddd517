"""Calendar blocks: dates a property cannot be booked (manual or imported)."""

from __future__ import annotations

from datetime import date

from django.db import transaction

from bookings.errors import BookingError
from bookings.events import (
    BLOCK_AGGREGATE,
    BLOCK_CANCELLED,
    BLOCK_CREATED,
    BLOCK_MODIFIED,
    BlockSnapshot,
    block_cancelled_payload,
    block_created_payload,
    block_modified_payload,
)
from bookings.models import Block
from bookings.selectors import booking_conflicts
from pms.models import Property
from pms.pipeline.publishing import emit_event
from tenants.models import Tenant


def _emit_block(block: Block, event_type: str, payload: BlockSnapshot, actor: str) -> None:
    emit_event(
        tenant_id=block.tenant_id,
        aggregate_type=BLOCK_AGGREGATE,
        aggregate_id=block.pk,
        event_type=event_type,
        payload=dict(payload),
        actor=actor,
    )


def _validate_block(*, property: Property, start: date, end: date, allow_overlap: bool) -> None:
    if end <= start:
        raise BookingError("invalid_dates", "The block must end after it starts.", field="end")
    if (
        not allow_overlap
        and booking_conflicts(property_id=property.pk, check_in=start, check_out=end).exists()
    ):
        raise BookingError("unavailable", "These dates overlap a booking of this property.")


def block_create(
    *,
    tenant: Tenant,
    property: Property,
    start: date,
    end: date,
    label: str = "",
    source: str = "manual",
    external_uid: str = "",
    allow_overlap: bool = False,
    actor: str = "",
) -> Block:
    """Block dates. Manual blocks may not cover a booking; imports may (they become conflicts)."""
    if property.tenant_id != tenant.pk:
        raise BookingError("not_found", "Property not found.")
    with transaction.atomic():
        locked = Property.objects.select_for_update().get(pk=property.pk)
        _validate_block(property=locked, start=start, end=end, allow_overlap=allow_overlap)
        block = Block.objects.create(
            tenant=tenant,
            property=locked,
            start=start,
            end=end,
            label=label,
            source=source,
            external_uid=external_uid,
        )
        _emit_block(block, BLOCK_CREATED, block_created_payload(block), actor)
    return block


def block_update(
    *,
    block: Block,
    start: date,
    end: date,
    label: str | None = None,
    allow_overlap: bool = False,
    actor: str = "",
) -> Block:
    with transaction.atomic():
        locked = Block.objects.select_for_update().get(pk=block.pk)
        _validate_block(property=locked.property, start=start, end=end, allow_overlap=allow_overlap)
        locked.start, locked.end, locked.is_active = start, end, True
        if label is not None:
            locked.label = label
        locked.save(update_fields=["start", "end", "label", "is_active", "updated_at"])
        _emit_block(locked, BLOCK_MODIFIED, block_modified_payload(locked), actor)
    return locked


def block_upsert(
    *,
    tenant: Tenant,
    property: Property,
    source: str,
    external_uid: str,
    start: date,
    end: date,
    label: str = "",
    actor: str = "",
) -> tuple[Block, str]:
    """Create or move the block a channel knows by ``external_uid``.

    Returns the block and what happened: "created", "modified" or "unchanged"
    (no event is emitted for an unchanged block, so re-imports are quiet).
    """
    if not external_uid:
        raise BookingError("invalid", "An imported block needs its external UID.")
    with transaction.atomic():
        existing = (
            Block.objects.select_for_update()
            .filter(property=property, source=source, external_uid=external_uid)
            .first()
        )
        if existing is None:
            block = block_create(
                tenant=tenant,
                property=property,
                start=start,
                end=end,
                label=label,
                source=source,
                external_uid=external_uid,
                allow_overlap=True,
                actor=actor,
            )
            return block, "created"
        if (existing.start, existing.end, existing.label, existing.is_active) == (
            start,
            end,
            label,
            True,
        ):
            return existing, "unchanged"
        block = block_update(
            block=existing, start=start, end=end, label=label, allow_overlap=True, actor=actor
        )
        return block, "modified"


def block_cancel(*, block: Block, actor: str = "") -> Block:
    with transaction.atomic():
        locked = Block.objects.select_for_update().get(pk=block.pk)
        if not locked.is_active:
            return locked
        locked.is_active = False
        locked.save(update_fields=["is_active", "updated_at"])
        _emit_block(locked, BLOCK_CANCELLED, block_cancelled_payload(locked), actor)
    return locked
