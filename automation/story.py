"""Automation's part of a booking's story: every email and SMS about it, and what became of it."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.urls import reverse

from automation.choices import OutboundStatus
from automation.models import OutboundMessage
from pms.story import StoryLine, StorySubject, story_source

_TONE = {
    OutboundStatus.SENT: "ok",
    OutboundStatus.FAILED: "bad",
    OutboundStatus.CANCELLED: "",
}


def _event_of(message: OutboundMessage) -> object:
    """Messages caused by an event carry its id first in their idempotency key."""
    head = message.idempotency_key.split(":", 1)[0]
    try:
        return uuid.UUID(head)
    except ValueError:
        return None


@story_source("automation.messages")
def booking_messages(subject: StorySubject) -> Iterable[StoryLine]:
    if subject.model != "bookings.booking":
        return []
    messages = OutboundMessage.objects.filter(booking_id=subject.object_id).order_by("created_at")
    return [
        StoryLine(
            at=message.sent_at or message.created_at,
            kind=message.channel,
            title=f"{message.get_channel_display()} to {message.recipient}: {message.kind}",
            detail=" · ".join(
                part
                for part in (
                    message.subject,
                    f"{message.attempts} attempts" if message.attempts > 1 else "",
                    message.last_error[:200],
                )
                if part
            ),
            outcome=message.get_status_display(),
            tone=_TONE.get(message.status, "warn"),  # type: ignore[call-overload]
            url=reverse("admin:automation_outboundmessage_change", args=[message.pk]),
            event_id=_event_of(message),
        )
        for message in messages
    ]
