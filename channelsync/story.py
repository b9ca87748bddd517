"""Channel sync's part of a story: the pushes to channels and the webhooks an event caused."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from django.db.models import Q
from django.urls import reverse

from bookings.events import BLOCK_AGGREGATE
from channelsync.choices import ConflictStatus, OutboundStatus
from channelsync.models import ChannelUpdate, Conflict, ImportedUid, WebhookDelivery
from pms.choices import FailedTaskStatus
from pms.models import DomainEvent, FailedTask
from pms.story import StoryLine, StorySubject, story_source

CHANNEL_TASKS = ("channelsync.tasks.import_channel", "channelsync.tasks.push_channel")
# A channel's story shows its most recent history: this many of each kind of record.
CHANNEL_STORY_LIMIT = 100


def channel_story_events(channel_id: int) -> list[DomainEvent]:
    """The latest events of the blocks the channel's feed brought in (imports, changes, ends)."""
    block_ids = ImportedUid.objects.filter(channel_id=channel_id).values_list("block_id", flat=True)
    events = DomainEvent.objects.filter(
        aggregate_type=BLOCK_AGGREGATE,
        aggregate_id__in=[str(pk) for pk in block_ids[: CHANNEL_STORY_LIMIT * 5]],
    ).order_by("-created_at")[:CHANNEL_STORY_LIMIT]
    return sorted(events, key=lambda event: (event.created_at, event.sequence))


_TONE = {OutboundStatus.SENT: "ok", OutboundStatus.FAILED: "bad", OutboundStatus.SUPERSEDED: ""}


def _detail(attempts: int, error: str, extra: str = "") -> str:
    parts = [f"{attempts} attempts" if attempts != 1 else "1 attempt", extra, error[:200]]
    return " · ".join(part for part in parts if part)


@story_source("channelsync.outbound")
def pushes_and_webhooks(subject: StorySubject) -> Iterable[StoryLine]:
    ids = subject.event_ids
    if not ids:
        return []
    lines = [
        StoryLine(
            at=update.sent_at or update.created_at,
            kind="push",
            title=f"Push to {update.channel.name}",
            detail=_detail(update.attempts, update.last_error),
            outcome=update.get_status_display(),
            tone=_TONE.get(update.status, "warn"),  # type: ignore[call-overload]
            url=reverse("admin:channelsync_channelupdate_change", args=[update.pk]),
            event_id=update.event_id,
        )
        for update in ChannelUpdate.objects.filter(event_id__in=ids).select_related("channel")
    ]
    lines.extend(
        StoryLine(
            at=delivery.delivered_at or delivery.created_at,
            kind="webhook",
            title=f"Webhook {delivery.event_type} to {urlsplit(delivery.subscription.url).netloc}",
            detail=_detail(
                delivery.attempts,
                delivery.last_error,
                f"HTTP {delivery.last_status_code}" if delivery.last_status_code else "",
            ),
            outcome=delivery.get_status_display(),
            tone=_TONE.get(delivery.status, "warn"),  # type: ignore[call-overload]
            url=reverse("admin:channelsync_webhookdelivery_change", args=[delivery.pk]),
            event_id=delivery.event_id,
        )
        for delivery in WebhookDelivery.objects.filter(event_id__in=ids).select_related(
            "subscription"
        )
    )
    return lines


@story_source("channelsync.channel")
def channel_history(subject: StorySubject) -> Iterable[StoryLine]:
    """A channel's own story: what it pushed, the conflicts it caused, its failed syncs."""
    if subject.model != "channelsync.channel":
        return []
    updates = ChannelUpdate.objects.filter(channel_id=subject.object_id).order_by("-created_at")
    lines = [
        StoryLine(
            at=update.sent_at or update.created_at,
            kind="push",
            title=f"Push of {update.aggregate_type} {update.aggregate_id} (#{update.sequence})",
            detail=_detail(update.attempts, update.last_error),
            outcome=update.get_status_display(),
            tone=_TONE.get(update.status, "warn"),  # type: ignore[call-overload]
            url=reverse("admin:channelsync_channelupdate_change", args=[update.pk]),
        )
        for update in updates[:CHANNEL_STORY_LIMIT]
    ]
    conflicts = Conflict.objects.filter(channel_id=subject.object_id).order_by("-detected_at")
    lines.extend(
        StoryLine(
            at=conflict.detected_at,
            kind="conflict",
            title=f"Conflict {conflict.start} to {conflict.end}",
            detail="the feed blocks nights a stay holds",
            outcome=conflict.get_status_display(),
            tone="bad" if conflict.status == ConflictStatus.OPEN else "ok",
            url=reverse("admin:channelsync_conflict_change", args=[conflict.pk]),
        )
        for conflict in conflicts[:CHANNEL_STORY_LIMIT]
    )
    failed = FailedTask.objects.filter(
        Q(args__0=subject.object_id) | Q(kwargs__channel_id=subject.object_id),
        task_name__in=CHANNEL_TASKS,
    )
    lines.extend(
        StoryLine(
            at=task.last_failed_at,
            kind="failure",
            title=f"Failed task: {task.task_name}",
            detail=f"{task.exception_class}: {task.exception_message[:200]}",
            outcome=task.get_status_display(),
            tone="ok" if task.status == FailedTaskStatus.RESOLVED else "bad",
            url=reverse("admin:pms_failedtask_change", args=[task.pk]),
        )
        for task in failed.order_by("-last_failed_at")[:CHANNEL_STORY_LIMIT]
    )
    return lines
