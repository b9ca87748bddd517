"""Channel sync's part of a story: the pushes to channels and the webhooks an event caused."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from django.urls import reverse

from channelsync.choices import OutboundStatus
from channelsync.models import ChannelUpdate, WebhookDelivery
from pms.story import StoryLine, StorySubject, story_source

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
