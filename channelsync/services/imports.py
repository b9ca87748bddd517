"""iCal import: fetch a channel's feed, parse it, apply it as blocks on the property.

``channel_import_run`` is what one poll does: the fetch and the parse happen
outside any transaction, then ``channel_import_apply`` writes the result in one.
Blocks are written through the bookings block services, so each change is an
event; an imported block that overlaps a booking or another channel's block opens
a conflict (``services.conflicts``).
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bookings.services import block_cancel, block_upsert
from channelsync.feeds.fetch import (
    FetchHTTPError,
    FetchRefused,
    FetchTooLarge,
    FetchTransientError,
    safe_request,
)
from channelsync.feeds.parse import FeedError, FeedEvent, FeedProblem, parse_feed_report
from channelsync.models import Channel, ImportedUid
from channelsync.services.channels import (
    ERROR_TEXT_LIMIT,
    channel_record_attempt,
    channel_record_failure,
    channel_record_success,
)
from channelsync.services.conflicts import conflicts_close, conflicts_detect
from pms.pipeline.endpoints import endpoint_call
from pms.pipeline.publishing import bulk_events

logger = logging.getLogger(__name__)


def channel_import_run(*, channel: Channel, full: bool = False) -> str:
    """Fetch, parse and apply the channel's feed once. Returns what happened.

    Call holding the channel's import lock (one import per channel at a time).
    A transient fetch error is recorded and raised for the task to retry, unless
    the server asks for a longer wait than a retry may take: then the next poll
    honours its Retry-After (``deferred``).
    """
    channel_id = channel.pk
    fetched_at = timezone.now()
    channel_record_attempt(channel_id=channel_id)
    headers = {}
    if not full and channel.feed_etag:
        headers["If-None-Match"] = channel.feed_etag
    if not full and channel.feed_last_modified:
        headers["If-Modified-Since"] = channel.feed_last_modified
    try:
        with endpoint_call(tenant_id=channel.tenant_id, url=channel.import_url):
            result = safe_request("GET", channel.import_url, headers=headers)
    except FetchTransientError as exc:
        retry_at = timezone.now() + timedelta(seconds=exc.retry_after) if exc.retry_after else None
        channel_record_failure(channel_id=channel_id, error=f"fetch: {exc}", retry_at=retry_at)
        if exc.retry_after is not None and exc.retry_after > settings.TASK_RETRY_BACKOFF_MAX:
            return "deferred"  # next_poll_at honours the Retry-After
        raise
    except (FetchRefused, FetchHTTPError, FetchTooLarge) as exc:
        channel_record_failure(channel_id=channel_id, error=f"fetch: {exc}")
        return "error"
    today = timezone.localdate(timezone=channel.property.timezone)
    events = None
    problems: list[FeedProblem] = []
    if not result.not_modified:
        try:
            report = parse_feed_report(
                result.body,
                tz=channel.property.timezone,
                today=today,
                horizon_days=settings.CHANNEL_IMPORT_HORIZON_DAYS,
            )
            events, problems = report.events, report.problems
        except FeedError as exc:
            channel_record_failure(channel_id=channel_id, error=f"feed: {exc}")
            return "malformed"
    # The blocks' events are bulk work: their deliveries go to the bulk queue, never in
    # front of another tenant's bookings or channel updates (pms.pipeline.publishing).
    with bulk_events():
        counts = channel_import_apply(
            channel=channel,
            events=events,
            etag=result.headers.get("ETag", ""),
            last_modified=result.headers.get("Last-Modified", ""),
            today=today,
            fetched_at=fetched_at,
            problems=problems,
        )
    logger.info("channel %s imported: %s", channel_id, counts)
    if counts.get("outdated"):
        return "outdated"
    return "not-modified" if events is None else "imported"


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
                    counts["conflicts"] += len(conflicts_detect(channel=locked, block=block))
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
                conflicts_close(block=imported.block, note="The channel cancelled the block.")
                counts["cancelled"] += 1
        channel_record_success(channel=locked, now=now)
    return counts
