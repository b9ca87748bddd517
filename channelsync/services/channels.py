"""Channel writes: configuration, import results, health, polling schedule, conflicts.

Every function is keyword-only and atomic; none does network I/O (the fetch
happens in the task, before ``channel_import_apply`` opens its transaction).
Alerts and follow-up tasks are enqueued with ``transaction.on_commit``.
"""

from __future__ import annotations

import logging
import random
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bookings.choices import OCCUPYING_STATUSES
from bookings.models import Block, Booking
from bookings.services import block_cancel, block_upsert
from channelsync.choices import (
    PUSH_KINDS,
    ChannelStatus,
    ConflictStatus,
    OutboundStatus,
)
from channelsync.feeds.parse import FeedEvent, FeedProblem
from channelsync.models import Channel, ChannelUpdate, Conflict, ImportedUid, new_export_token
from pms.models import Property
from pms.pipeline.fairness import fair_submit
from tenants.models import Tenant

logger = logging.getLogger(__name__)

ERROR_TEXT_LIMIT = 2000


def _on_commit_send(task_name: str, *args: Any, queue: str | None = None) -> None:
    """Enqueue after commit; a broker outage is covered by the beat sweeps."""

    def send() -> None:
        from config.celery import app

        try:
            app.send_task(task_name, args=list(args), queue=queue)
        except Exception:
            logger.warning("could not enqueue %s%s; the periodic sweep will", task_name, args)

    transaction.on_commit(send)


# --- Configuration -------------------------------------------------------------------


def channel_create(
    *,
    tenant: Tenant,
    property: Property,
    name: str,
    kind: str,
    import_url: str = "",
    push_url: str = "",
    push_api_key: str = "",
    push_listing_id: str = "",
    poll_interval: timedelta | None = None,
    rate_limit_per_second: float = 5.0,
    rate_limit_burst: int = 5,
) -> Channel:
    if property.tenant_id != tenant.pk:
        raise ValueError("The property belongs to another tenant.")
    with transaction.atomic():
        channel = Channel.objects.create(
            tenant=tenant,
            property=property,
            name=name,
            kind=kind,
            import_url=import_url,
            push_url=push_url,
            push_api_key=push_api_key,
            push_listing_id=push_listing_id,
            poll_interval=poll_interval or timedelta(minutes=15),
            rate_limit_per_second=rate_limit_per_second,
            rate_limit_burst=rate_limit_burst,
            next_poll_at=timezone.now() if import_url else None,
        )
    return channel


def channel_pause(*, channel: Channel) -> Channel:
    with transaction.atomic():
        locked = Channel.objects.select_for_update().get(pk=channel.pk)
        locked.is_paused = True
        locked.status = ChannelStatus.PAUSED
        locked.save(update_fields=["is_paused", "status"])
    return locked


def channel_resume(*, channel: Channel) -> Channel:
    """Unpause; an iCal channel is polled at once, a push channel sends what queued up."""
    with transaction.atomic():
        locked = Channel.objects.select_for_update().get(pk=channel.pk)
        locked.is_paused = False
        locked.status = ChannelStatus.ERROR if locked.consecutive_failures else ChannelStatus.OK
        if locked.last_success_at is None and not locked.consecutive_failures:
            locked.status = ChannelStatus.NEW
        fields = ["is_paused", "status"]
        if locked.import_url:
            locked.next_poll_at = timezone.now()
            fields.append("next_poll_at")
        locked.save(update_fields=fields)
        if locked.kind in PUSH_KINDS and locked.push_url:
            # Updates recorded while paused (and any held by a 401/403) are due now.
            ChannelUpdate.objects.filter(
                channel=locked, status=OutboundStatus.PENDING, next_attempt_at__gt=timezone.now()
            ).update(next_attempt_at=timezone.now())
            _on_commit_send("channelsync.tasks.push_channel", locked.pk)
    return locked


# Fields an edit may change; ``property`` is not one of them (the imported blocks
# live on the property: moving a channel is "retire" + "add").
CHANNEL_EDITABLE_FIELDS = frozenset(
    {
        "name",
        "kind",
        "import_url",
        "poll_interval",
        "push_url",
        "push_api_key",
        "push_listing_id",
        "rate_limit_per_second",
        "rate_limit_burst",
    }
)


def channel_update(*, channel: Channel, **changes: Any) -> Channel:
    """Change a channel's configuration (admin edits call this).

    A new or changed ``import_url`` is polled at once (and its conditional-request
    validators, which belonged to the old feed, are forgotten); removing it stops
    polling.
    """
    unknown = set(changes) - CHANNEL_EDITABLE_FIELDS
    if unknown:
        raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        locked = Channel.objects.select_for_update().get(pk=channel.pk)
        fields = [name for name, value in changes.items() if getattr(locked, name) != value]
        old_import_url = locked.import_url
        for name in fields:
            setattr(locked, name, changes[name])
        if "import_url" in fields or (locked.import_url and locked.next_poll_at is None):
            locked.next_poll_at = timezone.now() if locked.import_url else None
            fields.append("next_poll_at")
        if locked.import_url != old_import_url:
            locked.feed_etag, locked.feed_last_modified = "", ""
            fields += ["feed_etag", "feed_last_modified"]
        if fields:
            locked.full_clean(exclude=["tenant", "property", "export_token"])
            locked.save(update_fields=fields)
    return locked


def channel_retire(*, channel: Channel, actor: str = "") -> int:
    """Delete a channel after cancelling the blocks it imported (each one an event).

    Returns how many blocks were cancelled. Without this the blocks would stay
    active on the property's calendar with no channel left to remove them.
    """
    with transaction.atomic():
        locked = Channel.objects.select_for_update().get(pk=channel.pk)
        cancelled = 0
        blocks = Block.objects.select_for_update().filter(
            property_id=locked.property_id, source=locked.block_source, is_active=True
        )
        for block in blocks:
            block_cancel(block=block, actor=actor or f"channel:{locked.pk}")
            cancelled += 1
        locked.delete()
    return cancelled


def channel_export_token_rotate(*, channel: Channel) -> Channel:
    """Revoke the export URL: the old token answers 404 from now on."""
    with transaction.atomic():
        locked = Channel.objects.select_for_update().get(pk=channel.pk)
        locked.export_token = new_export_token()
        locked.save(update_fields=["export_token"])
    return locked


def channel_sync_request(*, channel: Channel, full: bool = False) -> None:
    """Admin "sync now" / "full resync": an import, admitted within the tenant's share.

    Goes through pms.pipeline.fairness: a manager resyncing 5,000 channels holds at most a
    few imports in the queue at a time, so other tenants' syncs are not stuck
    behind them. A full resync forgets the conditional-request validators and runs
    on ``bulk`` so a big batch of resyncs never delays routine polls.
    """
    with transaction.atomic():
        if full:
            Channel.objects.filter(pk=channel.pk).update(feed_etag="", feed_last_modified="")
        fair_submit(
            tenant_id=channel.tenant_id,
            scope="sync",
            task_name="channelsync.tasks.import_channel",
            args=[channel.pk, full],
            queue="bulk" if full else "channelsync",
            dedupe_key=f"import:{channel.pk}:{int(full)}",
        )


# --- Polling schedule -------------------------------------------------------------------


def next_poll_time(*, channel: Channel, now: datetime) -> datetime:
    """The interval plus up to ``CHANNEL_POLL_JITTER`` of it, so polls spread out."""
    interval = channel.poll_interval.total_seconds()
    jitter = random.uniform(0, interval * settings.CHANNEL_POLL_JITTER)
    return now + timedelta(seconds=interval + jitter)


def channels_claim_due_polls(*, limit: int = 200) -> list[int]:
    """Claim channels whose poll is due and move their next poll forward. Returns ids.

    ``SKIP LOCKED``: two beats (or a slow tick) never claim one channel twice.
    """
    now = timezone.now()
    with transaction.atomic():
        due = list(
            Channel.objects.select_for_update(skip_locked=True)
            .filter(is_paused=False, next_poll_at__lte=now)
            .exclude(import_url="")
            .order_by("next_poll_at")[:limit]
        )
        for channel in due:
            channel.next_poll_at = next_poll_time(channel=channel, now=now)
        Channel.objects.bulk_update(due, ["next_poll_at"])
    return [channel.pk for channel in due]


# --- Health ------------------------------------------------------------------------------


def channel_record_attempt(*, channel_id: int) -> None:
    Channel.objects.filter(pk=channel_id).update(last_attempt_at=timezone.now())


def channel_record_failure(
    *, channel_id: int, error: str, retry_at: datetime | None = None
) -> Channel | None:
    """Set the channel's error fields (each failed attempt counts)."""
    now = timezone.now()
    with transaction.atomic():
        channel = Channel.objects.select_for_update().filter(pk=channel_id).first()
        if channel is None:
            return None
        channel.last_error = error[:ERROR_TEXT_LIMIT]
        channel.last_error_at = now
        channel.last_attempt_at = now
        channel.consecutive_failures += 1
        fields = ["last_error", "last_error_at", "last_attempt_at", "consecutive_failures"]
        if not channel.is_paused:
            channel.status = ChannelStatus.ERROR
            fields.append("status")
        if retry_at is not None and channel.import_url:
            channel.next_poll_at = max(retry_at, channel.next_poll_at or retry_at)
            fields.append("next_poll_at")
        channel.save(update_fields=fields)
    logger.warning("channel %s failed: %s", channel_id, error[:300])
    return channel


def _record_success(channel: Channel, *, now: datetime) -> None:
    channel.last_attempt_at = now
    channel.last_success_at = now
    channel.consecutive_failures = 0
    channel.stale_alerted_at = None
    fields = [
        "last_attempt_at",
        "last_success_at",
        "consecutive_failures",
        "stale_alerted_at",
        "feed_etag",
        "feed_last_modified",
        "import_warnings",
    ]
    if not channel.is_paused:
        channel.status = ChannelStatus.OK
        fields.append("status")
    channel.save(update_fields=fields)


def channel_record_push_success(*, channel_id: int) -> None:
    with transaction.atomic():
        channel = Channel.objects.select_for_update().filter(pk=channel_id).first()
        if channel is not None:
            _record_success(channel, now=timezone.now())


def channels_mark_stale(*, channel_ids: list[int]) -> list[int]:
    """Mark channels stale and return those not alerted yet (claimed for one alert)."""
    now = timezone.now()
    with transaction.atomic():
        claimed = list(
            Channel.objects.select_for_update(skip_locked=True).filter(
                pk__in=channel_ids, stale_alerted_at__isnull=True
            )
        )
        for channel in claimed:
            channel.status = ChannelStatus.STALE
            channel.stale_alerted_at = now
        Channel.objects.bulk_update(claimed, ["status", "stale_alerted_at"])
    return [channel.pk for channel in claimed]


# --- Import ------------------------------------------------------------------------------


def channel_import_apply(
    *,
    channel: Channel,
    events: list[FeedEvent] | None,
    etag: str = "",
    last_modified: str = "",
    today: date | None = None,
    fetched_at: datetime | None = None,
    problems: list[FeedProblem] | None = None,
) -> dict[str, int]:
    """Apply one successful fetch. ``events`` is None for a 304 (feed unchanged).

    ``problems`` are the feed's events that could not be read: their blocks (keys
    ``UID`` and ``UID#...``) are kept as they were, neither moved nor counted as
    missing, and the channel's ``import_warnings`` names them until a fetch reads
    them again.

    A fetch that started before the channel's last success is discarded
    (``outdated``): a newer fetch was applied meanwhile and must not be undone.

    Blocks are upserted by UID through the bookings services (so each change is
    an event). A UID missing from ``CHANNEL_VANISH_AFTER_FETCHES`` successful
    fetches in a row is cancelled (Vrbo shows cancellations only that way);
    past blocks are left alone because feeds drop past dates.
    """
    today = today or timezone.localdate(timezone=channel.property.timezone)
    now = timezone.now()
    counts = {"created": 0, "modified": 0, "unchanged": 0, "cancelled": 0, "conflicts": 0}
    with transaction.atomic():
        locked = Channel.objects.select_for_update().select_related("property").get(pk=channel.pk)
        if fetched_at and locked.last_success_at and fetched_at < locked.last_success_at:
            counts["outdated"] = 1
            return counts
        seen: set[str] = set()
        if events is not None:
            locked.feed_etag, locked.feed_last_modified = etag[:300], last_modified[:100]
            locked.import_warnings = "\n".join(
                f"Not imported (its blocks are kept): {problem.message}"
                for problem in problems or []
            )[:ERROR_TEXT_LIMIT]
            for event in events:
                seen.add(event.uid)
                block, outcome = block_upsert(
                    tenant=locked.tenant,
                    property=locked.property,
                    source=locked.block_source,
                    external_uid=event.uid,
                    start=event.start,
                    end=event.end,
                    label=event.summary or "Not available",
                    actor=f"channel:{locked.pk}",
                )
                counts[outcome] += 1
                ImportedUid.objects.update_or_create(
                    channel=locked,
                    uid=event.uid,
                    defaults={
                        "tenant_id": locked.tenant_id,
                        "block": block,
                        "missing_fetches": 0,
                        "last_seen_at": now,
                    },
                )
                if outcome != "unchanged":
                    counts["conflicts"] += len(_detect_conflicts(locked, block))
        missing = ImportedUid.objects.select_for_update().filter(
            channel=locked, block__is_active=True, block__end__gt=today
        )
        if events is None:
            # Unchanged feed: only UIDs already missing keep counting.
            missing = missing.filter(missing_fetches__gt=0)
        else:
            missing = missing.exclude(uid__in=seen)
            for problem in problems or []:
                missing = missing.exclude(uid=problem.uid).exclude(
                    uid__startswith=f"{problem.uid}#"
                )
        threshold = settings.CHANNEL_VANISH_AFTER_FETCHES
        for imported in missing.select_related("block"):
            imported.missing_fetches += 1
            imported.save(update_fields=["missing_fetches"])
            if imported.missing_fetches >= threshold:
                block_cancel(block=imported.block, actor=f"channel:{locked.pk}")
                _close_conflicts_of(imported.block, note="The channel cancelled the block.")
                counts["cancelled"] += 1
        _record_success(locked, now=now)
    return counts


def _detect_conflicts(channel: Channel, block: Block) -> list[Conflict]:
    """Open a Conflict per booking or other channel's block this block overlaps."""
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
            _on_commit_send("channelsync.tasks.alert_conflict", conflict.pk, queue="messaging")
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


def _close_conflicts_of(block: Block, *, note: str) -> None:
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
