"""Channels: configuration, the polling schedule and health (success, failures, staleness).

Every write is keyword-only and atomic, and none does network I/O. Follow-up
work (a push after resume, an import) is sent by task name after commit
(``pms.pipeline.enqueue``, ``pms.pipeline.fairness``): services never import tasks.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bookings.models import Block
from bookings.services import block_cancel
from channelsync.choices import PUSH_KINDS, ChannelStatus, OutboundStatus
from channelsync.models import Channel, ChannelUpdate, new_export_token
from channelsync.selectors import channels_stale
from channelsync.services.manager_mail import manager_mail_send
from pms.models import Property
from pms.pipeline.announce import CHANNEL, announce
from pms.pipeline.endpoints import endpoint_lane
from pms.pipeline.enqueue import enqueue_on_commit
from pms.pipeline.fairness import FairWork, fair_submit_many
from pms.pipeline.pending import claim
from tenants.models import Tenant

logger = logging.getLogger(__name__)

ERROR_TEXT_LIMIT = 2000

# The channel tasks, by name (channelsync.tasks registers them under these).
IMPORT_TASK = "channelsync.tasks.import_channel"
PUSH_TASK = "channelsync.tasks.push_channel"


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
            channel_push_submit(channel=locked)
    return locked


# Fields an edit may change; ``property`` is not one of them (the imported blocks
# live on the property: moving a channel is "retire" + "add").
CHANNEL_EDITABLE_FIELDS = (
    "name",
    "kind",
    "import_url",
    "poll_interval",
    "push_url",
    "push_api_key",
    "push_listing_id",
    "rate_limit_per_second",
    "rate_limit_burst",
)  # in the order the admin form shows them


def channel_update(*, channel: Channel, **changes: Any) -> Channel:
    """Change a channel's configuration (admin edits call this).

    A new or changed ``import_url`` is polled at once (and its conditional-request
    validators, which belonged to the old feed, are forgotten); removing it stops
    polling.
    """
    unknown = set(changes) - set(CHANNEL_EDITABLE_FIELDS)
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
    behind them. A full resync also forgets the conditional-request validators.
    """
    channels_sync_request(channels=[channel], full=full)


def channels_sync_request(*, channels: list[Channel], full: bool = False) -> int:
    """ "Sync now" / "full resync" of many channels (the admin actions): one transaction,
    one fair submission, however many channels are selected. Returns how many."""
    with transaction.atomic():
        if full:
            Channel.objects.filter(pk__in=[c.pk for c in channels]).update(
                feed_etag="", feed_last_modified=""
            )
        channel_imports_submit(channels=channels, full=full)
    return len(channels)


def channel_imports_submit(*, channels: list[Channel], full: bool = False) -> None:
    """Imports of these channels, admitted per tenant (scope ``sync``) and per feed host.

    An import fetches from the tenant's feed host and parses and writes a whole feed: it
    runs on ``bulk`` (the background group, at a lower CPU priority) in the host's lane
    (pms.pipeline.endpoints), so a feed server that hangs holds at most
    ``FAIR_INFLIGHT_PER_ENDPOINT`` workers and, once its circuit opens, none.
    """
    fair_submit_many(
        [
            FairWork(
                tenant_id=channel.tenant_id,
                scope="sync",
                task_name=IMPORT_TASK,
                args=[channel.pk, full],
                queue="bulk",
                dedupe_key=f"import:{channel.pk}:{int(full)}",
                lane=endpoint_lane(channel.import_url),
            )
            for channel in channels
        ]
    )


def channel_push_submit(*, channel: Channel, task_id: str = "") -> None:
    """A run sending the push channel's pending updates, admitted per tenant and endpoint.

    One waiting run per channel is enough (a run sends everything due), so repeats
    while one waits are dropped. ``task_id``: a fixed id (the sweep's, per head update).
    """
    channels_push_submit(runs=[(channel, task_id)])


def channels_push_submit(*, runs: list[tuple[Channel, str]]) -> None:
    """``channel_push_submit`` for many channels at once: one query and one insert (the
    sweep's overdue heads). ``runs``: (channel, fixed task id or "")."""
    fair_submit_many(
        [
            FairWork(
                tenant_id=channel.tenant_id,
                scope="push",
                task_name=PUSH_TASK,
                args=[channel.pk],
                queue="outbound",
                dedupe_key=f"push:{channel.pk}",
                lane=endpoint_lane(channel.push_url),
                task_id=task_id,
            )
            for channel, task_id in runs
        ]
    )


# --- Polling schedule -------------------------------------------------------------------


def next_poll_time(*, channel: Channel, now: datetime) -> datetime:
    """The interval plus up to ``CHANNEL_POLL_JITTER`` of it, so polls spread out."""
    interval = channel.poll_interval.total_seconds()
    jitter = random.uniform(0, interval * settings.CHANNEL_POLL_JITTER)
    return now + timedelta(seconds=interval + jitter)


def channels_claim_due_polls(*, limit: int = 200) -> list[int]:
    """Claim channels whose poll is due and move their next poll forward. Returns ids.

    ``SKIP LOCKED`` (pms.pipeline.pending): two beats (or a slow tick) never claim one
    channel twice.
    """

    def hold(channel: Channel, now: datetime) -> None:
        channel.next_poll_at = next_poll_time(channel=channel, now=now)

    due = claim(
        Channel.objects.filter(is_paused=False).exclude(import_url=""),
        due_field="next_poll_at",
        hold=hold,
        fields=["next_poll_at"],
        batch_size=limit,
    )
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
        announce(tenant_id=channel.tenant_id, topic=CHANNEL, property_id=channel.property_id)
    logger.warning("channel %s failed: %s", channel_id, error[:300])
    return channel


def channel_record_success(*, channel: Channel, now: datetime) -> None:
    """A fetch or push worked: clear the failure count and the stale mark.

    Call while holding the channel's row lock (the import's or ``channel_record_push_success``).
    """
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
    announce(tenant_id=channel.tenant_id, topic=CHANNEL, property_id=channel.property_id)


def channel_record_push_success(*, channel_id: int) -> None:
    with transaction.atomic():
        channel = Channel.objects.select_for_update().filter(pk=channel_id).first()
        if channel is not None:
            channel_record_success(channel=channel, now=timezone.now())


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


ALERT_STALE_TASK = "channelsync.tasks.alert_stale_channel"


def stale_channel_alerts_submit() -> int:
    """Beat: an alert task per stale channel not alerted yet (the task claims and mails).

    One query and one message per stale channel, sent after this block commits: the
    mail, and what it costs, belongs to each channel's own task, so the sweep's
    statements do not grow with the channels. A lost message is caught by the next
    check (the channel is still stale and unalerted); a repeat claims nothing.
    """
    stale = list(channels_stale().values_list("pk", "tenant_id"))
    with transaction.atomic():
        for channel_id, tenant_id in stale:
            enqueue_on_commit(
                ALERT_STALE_TASK,
                args=[channel_id],
                headers={"tenant_id": tenant_id},
                # One review per channel if the alert keeps failing (FailedTask.task_id).
                task_id=f"stale-channel-alert-{channel_id}",
                caught_up_by="the next stale-channel check",
            )
    return len(stale)


def channel_unmark_stale(*, channel_id: int) -> None:
    """The stale-channel mail failed: let the retry claim the channel again."""
    Channel.objects.filter(pk=channel_id).update(stale_alerted_at=None)


def stale_channel_alert_send(*, channel: Channel) -> int:
    """Mail the managers about a channel claimed by ``channels_mark_stale`` (no transaction)."""
    last = channel.last_success_at.isoformat() if channel.last_success_at else "never"
    return manager_mail_send(
        tenant_id=channel.tenant_id,
        subject=f"Channel {channel.name} of {channel.property.name} is stale",
        body=(
            f"No successful sync since {last} (poll interval {channel.poll_interval}).\n"
            f"Last error: {channel.last_error or '-'}\n\n"
            "See Admin > Channel sync > Channels; 'Sync now' retries at once."
        ),
    )
