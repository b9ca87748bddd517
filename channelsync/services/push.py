"""Push-style channel APIs: availability updates over HTTP (JSON), in order, rate limited.

An adapter turns a ChannelUpdate into HTTP calls: ``GenericJsonAdapter`` (our
own JSON, documented in the OpenAPI schema; ``services.push_adapters``) and
``ChannexAriAdapter`` (``services.push_channex``: a channel manager's
availability-and-rates API). ``channel_updates_push`` drains a channel's pending
updates:

- one sender per channel at a time (a Redis lock), oldest update first, and a
  head update that must wait (Retry-After, backoff) blocks the ones behind it,
  so updates for the property are sent in order;
- the head is claimed before it is sent (``pms.pipeline.pending.claim_one``: row
  lock, due time moved ``IN_FLIGHT_SECONDS`` ahead), so a sender that dies
  mid-request leaves it due again, to its task's retry or the sweep;
- an update whose aggregate already has a newer update sent or queued is
  marked superseded, never sent: payloads are full state, so the newest wins;
- every request takes a token from the channel's Redis token bucket, shared by
  all workers;
- one run is bounded (``CHANNEL_PUSH_RUN_SECONDS``, ``CHANNEL_PUSH_RUN_MAX_UPDATES``)
  well inside the task's soft time limit and reports ``more``; the task then
  enqueues a fresh run for the rest;
- a 401/403 (or a redirect) means the channel's configuration is wrong, not the
  update: the channel is paused with the error recorded and every update stays
  pending; resuming the channel sends them.

No network I/O happens inside a transaction or while a row lock is held. Runs are fair
work (``channel_push_submit``: scope ``push``, the push URL's lane, queue ``outbound``)
and every request is timed on the channel's circuit (pms.pipeline.endpoints).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from bookings.choices import OCCUPYING_STATUSES
from channelsync.choices import ChannelKind, OutboundStatus
from channelsync.feeds.fetch import FetchHTTPError, FetchRefused, FetchTooLarge
from channelsync.feeds.ratelimit import token_acquire
from channelsync.models import Channel, ChannelUpdate
from channelsync.services.channels import (
    channel_pause,
    channel_record_failure,
    channel_record_push_success,
)
from channelsync.services.push_adapters import (
    ChannelAdapter,
    GenericJsonAdapter,
    PushConfigurationError,
)
from channelsync.services.push_channex import ChannexAriAdapter
from pms.pipeline.endpoints import endpoint_call
from pms.pipeline.errors import TransientError
from pms.pipeline.pending import claim_one
from pms.pipeline.redis_client import redis_client

logger = logging.getLogger(__name__)

LOCK_SECONDS = 120
MAX_RATE_WAIT = 2.0
# A claimed head is due again this long after its send started (the task's hard limit).
IN_FLIGHT_SECONDS = 60

# One adapter per push kind (channelsync.choices.PUSH_KINDS).
ADAPTERS: dict[str, ChannelAdapter] = {
    ChannelKind.PUSH_API: GenericJsonAdapter(),
    ChannelKind.PUSH_CHANNEX: ChannexAriAdapter(),
}


def update_payload(event_payload: dict[str, Any], *, aggregate_type: str) -> dict[str, Any]:
    """What the remote side needs: the span and whether it is free (from the event snapshot)."""
    if aggregate_type == "booking":
        return {
            "start": event_payload["check_in"],
            "end": event_payload["check_out"],
            "available": event_payload["status"] not in OCCUPYING_STATUSES,
        }
    return {
        "start": event_payload["start"],
        "end": event_payload["end"],
        "available": not event_payload["is_active"],
    }


def _lock_key(channel_id: int) -> str:
    return f"pms:channel-push:{channel_id}"


# Answers meaning "your credentials or URL are wrong": every update would fail the same way.
PAUSE_ON_STATUS = frozenset({301, 302, 303, 307, 308, 401, 403})


def _followup_key(channel_id: int) -> str:
    return f"pms:channel-push-followup:{channel_id}"


def push_followup_claim(*, channel_id: int, seconds: int = 5) -> bool:
    """True for the first caller in ``seconds``: one "look again" run queued per channel."""
    return bool(redis_client().set(_followup_key(channel_id), "1", nx=True, ex=seconds))


def channel_updates_push(*, channel_id: int) -> dict[str, int]:
    """Send the channel's due updates in order. Raises TransientError to ask for a retry.

    ``more`` is 1 when the run stopped at its budget with updates still due.
    """
    counts = {"sent": 0, "superseded": 0, "failed": 0, "busy": 0, "more": 0, "paused": 0}
    channel = Channel.objects.filter(pk=channel_id).first()
    if channel is None or channel.kind not in ADAPTERS or channel.is_paused:
        return counts
    lock = redis_client().lock(_lock_key(channel_id), timeout=LOCK_SECONDS, blocking=False)
    if not lock.acquire(blocking=False):
        counts["busy"] = 1
        return counts
    deadline = time.monotonic() + settings.CHANNEL_PUSH_RUN_SECONDS
    budget = settings.CHANNEL_PUSH_RUN_MAX_UPDATES
    try:
        while True:
            update = _head(channel_id)
            if update is None or update.next_attempt_at > timezone.now():
                return counts  # nothing due; a waiting head blocks the rest (order)
            handled = counts["sent"] + counts["superseded"] + counts["failed"]
            if handled >= budget or time.monotonic() >= deadline:
                counts["more"] = 1
                return counts
            if _supersede_if_stale(update):
                counts["superseded"] += 1
                continue
            wait = token_acquire(
                key=f"channel:{channel_id}",
                rate=channel.rate_limit_per_second,
                burst=channel.rate_limit_burst,
                max_wait=MAX_RATE_WAIT,
            )
            if wait:
                raise TransientError("rate limit: waiting for a token", retry_after=wait)
            lock.reacquire()
            if _claim(update) is None:
                return counts  # changed since it was read (resumed, sent, held): look again later
            try:
                with endpoint_call(tenant_id=channel.tenant_id, url=channel.push_url):
                    ADAPTERS[channel.kind].send(channel=channel, update=update)
            except PushConfigurationError as exc:
                _pause_for_configuration(channel, update, exc)
                counts["paused"] = 1
                return counts
            except TransientError as exc:
                _record_update_failure(update, str(exc), retry_after=exc.retry_after or 0)
                channel_record_failure(channel_id=channel_id, error=f"push: {exc}")
                raise
            except FetchHTTPError as exc:
                if exc.status in PAUSE_ON_STATUS:
                    _pause_for_configuration(channel, update, exc)
                    counts["paused"] = 1
                    return counts
                _record_update_failure(update, str(exc), give_up=True)
                channel_record_failure(channel_id=channel_id, error=f"push: {exc}")
                counts["failed"] += 1
                continue
            except (FetchRefused, FetchTooLarge) as exc:
                # Retrying the same request cannot help: give this update up, go on.
                _record_update_failure(update, str(exc), give_up=True)
                channel_record_failure(channel_id=channel_id, error=f"push: {exc}")
                counts["failed"] += 1
                continue
            ChannelUpdate.objects.filter(pk=update.pk).update(
                status=OutboundStatus.SENT,
                sent_at=timezone.now(),
                attempts=update.attempts + 1,
                last_error="",
            )
            channel_record_push_success(channel_id=channel_id)
            counts["sent"] += 1
    finally:
        try:
            lock.release()
        except Exception:  # expired: another sender may already own it; nothing to undo
            logger.info("push lock of channel %s had expired", channel_id)


def _pause_for_configuration(channel: Channel, update: ChannelUpdate, exc: Exception) -> None:
    """Credentials or URL rejected: pause the channel, keep every update pending."""
    error = f"push: {exc}; channel paused: fix the API key / push URL, then resume it"
    ChannelUpdate.objects.filter(pk=update.pk).update(
        attempts=update.attempts + 1, last_error=str(exc)[:2000]
    )
    channel_pause(channel=channel)
    channel_record_failure(channel_id=channel.pk, error=error)
    logger.warning("push channel %s paused: %s", channel.pk, exc)


def _hold(update: ChannelUpdate, now: datetime) -> None:
    update.next_attempt_at = now + timedelta(seconds=IN_FLIGHT_SECONDS)


def _claim(update: ChannelUpdate) -> ChannelUpdate | None:
    """Claim the head for sending (still pending and due), or None."""
    return claim_one(
        ChannelUpdate.objects.filter(status=OutboundStatus.PENDING),
        pk=update.pk,
        due_field="next_attempt_at",
        hold=_hold,
        fields=["next_attempt_at"],
    )


def _head(channel_id: int) -> ChannelUpdate | None:
    return (
        ChannelUpdate.objects.filter(channel_id=channel_id, status=OutboundStatus.PENDING)
        .order_by("created_at", "id")
        .first()
    )


def _supersede_if_stale(update: ChannelUpdate) -> bool:
    same_aggregate = ChannelUpdate.objects.filter(
        channel_id=update.channel_id,
        aggregate_type=update.aggregate_type,
        aggregate_id=update.aggregate_id,
        sequence__gt=update.sequence,
        status__in=[OutboundStatus.SENT, OutboundStatus.PENDING],
    )
    if not same_aggregate.exists():
        return False
    ChannelUpdate.objects.filter(pk=update.pk, status=OutboundStatus.PENDING).update(
        status=OutboundStatus.SUPERSEDED
    )
    return True


def _record_update_failure(
    update: ChannelUpdate, error: str, *, retry_after: float = 0, give_up: bool = False
) -> None:
    fields: dict[str, Any] = {"attempts": update.attempts + 1, "last_error": error[:2000]}
    if give_up:
        fields["status"] = OutboundStatus.FAILED
    else:
        fields["next_attempt_at"] = timezone.now() + timedelta(seconds=retry_after)
    ChannelUpdate.objects.filter(pk=update.pk).update(**fields)


def channel_updates_defer(*, channel_id: int) -> None:
    """Retries ran out: the head waits CHANNEL_OUTBOUND_RETRY_DELAY, then the sweep tries again."""
    head = _head(channel_id)
    if head is not None:
        ChannelUpdate.objects.filter(pk=head.pk).update(
            next_attempt_at=timezone.now()
            + timedelta(seconds=settings.CHANNEL_OUTBOUND_RETRY_DELAY)
        )


def channel_updates_due_channels(*, grace: timedelta) -> list[tuple[int, int]]:
    """(channel id, head update id) of channels whose head update is overdue by ``grace``."""
    now = timezone.now()
    heads = (
        ChannelUpdate.objects.filter(status=OutboundStatus.PENDING)
        .order_by("channel_id", "created_at", "id")
        .distinct("channel_id")
    )
    return [(head.channel_id, head.pk) for head in heads if head.next_attempt_at <= now - grace]


def channel_updates_record(
    *,
    channel: Channel,
    event_id: Any,
    aggregate_type: str,
    aggregate_id: str,
    sequence: int,
    payload: dict[str, Any],
) -> bool:
    """Write one pending update (inside the handler's transaction). True if new."""
    _update, created = ChannelUpdate.objects.get_or_create(
        channel=channel,
        event_id=event_id,
        defaults={
            "tenant_id": channel.tenant_id,
            "aggregate_type": aggregate_type,
            "aggregate_id": aggregate_id,
            "sequence": sequence,
            "payload": payload,
            "next_attempt_at": timezone.now(),
        },
    )
    return created
