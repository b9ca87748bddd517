"""Calendar conflicts: an imported block that overlaps a booking or another channel's block.

A conflict is opened by the import that brings the overlap in, closes itself when
the block moves away or is cancelled, and is resolved or dismissed by a manager.
Each new conflict is mailed to the tenant's managers once: the task claims it
(``alerted_at``), sends outside any transaction, and un-claims it if the mail fails
so the retry sends it.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from bookings.choices import OCCUPYING_STATUSES
from bookings.models import Block, Booking
from channelsync.choices import ConflictStatus
from channelsync.models import Channel, Conflict
from channelsync.services.manager_mail import manager_mail_send
from pms.pipeline.enqueue import enqueue_on_commit

ALERT_CONFLICT_TASK = "channelsync.tasks.alert_conflict"


def conflicts_detect(*, channel: Channel, block: Block) -> list[Conflict]:
    """Open a Conflict per booking or other channel's block this block overlaps.

    Call inside the import's transaction. Returns the conflicts opened now (each
    mailed once after commit); an open conflict the block no longer overlaps closes.
    """
    created: list[Conflict] = []
    overlapping_bookings = Booking.objects.filter(
        property_id=block.property_id,
        status__in=OCCUPYING_STATUSES,
        check_in__lt=block.end,
        check_out__gt=block.start,
    )
    overlapping_blocks = (
        Block.objects.filter(
            property_id=block.property_id,
            is_active=True,
            source__startswith="channel:",
            start__lt=block.end,
            end__gt=block.start,
        )
        .exclude(source=block.source)
        .exclude(pk=block.pk)
    )
    candidates: list[dict[str, Any]] = [
        {
            "booking": booking,
            "start": max(block.start, booking.check_in),
            "end": min(block.end, booking.check_out),
        }
        for booking in overlapping_bookings
    ] + [
        {
            "other_block": other,
            "start": max(block.start, other.start),
            "end": min(block.end, other.end),
        }
        for other in overlapping_blocks
    ]
    for candidate in candidates:
        key = {k: v for k, v in candidate.items() if k in ("booking", "other_block")}
        conflict, is_new = Conflict.objects.get_or_create(
            block=block,
            status=ConflictStatus.OPEN,
            **key,
            defaults={
                "tenant_id": channel.tenant_id,
                "property_id": block.property_id,
                "channel": channel,
                "start": candidate["start"],
                "end": candidate["end"],
            },
        )
        if is_new:
            created.append(conflict)
            # Lost, the conflict is still open and listed in the admin; no sweep re-mails it.
            enqueue_on_commit(
                ALERT_CONFLICT_TASK,
                args=[conflict.pk],
                queue="messaging",
                caught_up_by="nothing (the conflict is listed in the admin)",
            )
        elif (conflict.start, conflict.end) != (candidate["start"], candidate["end"]):
            conflict.start, conflict.end = candidate["start"], candidate["end"]
            conflict.save(update_fields=["start", "end"])
    # An open conflict the block no longer overlaps (it moved away) closes itself.
    stale = (
        Conflict.objects.filter(block=block, status=ConflictStatus.OPEN)
        .exclude(booking__in=[c.get("booking") for c in candidates if c.get("booking")])
        .exclude(other_block__in=[c.get("other_block") for c in candidates if c.get("other_block")])
    )
    stale.update(
        status=ConflictStatus.RESOLVED,
        resolved_at=timezone.now(),
        resolution_note="The imported block moved; no overlap any more.",
    )
    return created


def conflicts_close(*, block: Block, note: str) -> None:
    """Resolve the block's open conflicts (the channel cancelled the block)."""
    Conflict.objects.filter(block=block, status=ConflictStatus.OPEN).update(
        status=ConflictStatus.RESOLVED, resolved_at=timezone.now(), resolution_note=note
    )


def conflict_resolve(
    *, conflict: Conflict, user: Any, note: str, dismiss: bool = False
) -> Conflict:
    with transaction.atomic():
        locked = Conflict.objects.select_for_update().get(pk=conflict.pk)
        if locked.status != ConflictStatus.OPEN:
            return locked
        locked.status = ConflictStatus.DISMISSED if dismiss else ConflictStatus.RESOLVED
        locked.resolved_at = timezone.now()
        locked.resolved_by = user
        locked.resolution_note = note
        locked.save(update_fields=["status", "resolved_at", "resolved_by", "resolution_note"])
    return locked


def conflict_claim_alert(*, conflict_id: int) -> Conflict | None:
    """Mark the conflict alerted; returns it only the first time (once per incident)."""
    with transaction.atomic():
        conflict = (
            Conflict.objects.select_for_update(of=("self",))
            .select_related("property", "channel", "booking", "block", "other_block")
            .filter(pk=conflict_id, alerted_at__isnull=True)
            .first()
        )
        if conflict is None:
            return None
        conflict.alerted_at = timezone.now()
        conflict.save(update_fields=["alerted_at"])
    return conflict


def conflict_unclaim_alert(*, conflict_id: int) -> None:
    """The mail failed: let the retry claim it again."""
    Conflict.objects.filter(pk=conflict_id).update(alerted_at=None)


def conflict_alert_send(*, conflict: Conflict) -> int:
    """Mail the managers about a claimed conflict (no transaction open)."""
    against = (
        f"booking {conflict.booking.reference}"
        if conflict.booking
        else f"a block from another channel ({conflict.other_block})"
    )
    return manager_mail_send(
        tenant_id=conflict.tenant_id,
        subject=f"Calendar conflict on {conflict.property.name}",
        body=(
            f"{conflict.channel.name} imported a block "
            f"{conflict.block.start}..{conflict.block.end} that overlaps {against} "
            f"({conflict.start}..{conflict.end}).\n\n"
            "Resolve it in Admin > Channel sync > Conflicts."
        ),
    )
