"""The relay: re-publish every pending delivery whose message did not arrive.

Publishing after commit is only the fast path (pms.pipeline.publishing). A
delivery whose message was lost (broker down, process killed right after
commit, a Redis restarted empty) stays ``pending``; once its ``due_at`` passes,
the relay claims it and sends it again, backing off per send.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from pms.choices import DeliveryStatus
from pms.models import EventDelivery
from pms.pipeline.broker_stats import queue_depths
from pms.pipeline.deadlines import relay_backoff
from pms.pipeline.failures import record_delivery_without_handler
from pms.pipeline.pending import claim
from pms.pipeline.publishing import broker_breaker, delivery_task_id, publish_deliveries
from pms.pipeline.registry import get_handler

logger = logging.getLogger(__name__)

# A message is published a moment after its delivery row is written (after
# commit); a backlog whose oldest message is this much younger still holds it.
_PUBLISH_LAG_TOLERANCE = timedelta(seconds=5)

# What the relay does with a claimed delivery (_hold).
SEND, WAIT, ORPHAN = "send", "wait", "orphan"


def _backlog_ages() -> dict[str, timedelta]:
    """Age of the oldest waiting message per queue that has a backlog (best effort)."""
    return {
        depth.queue: timedelta(seconds=depth.oldest_age_seconds)
        for depth in queue_depths()
        if depth.depth and depth.oldest_age_seconds is not None
    }


def _still_queued(delivery: EventDelivery, backlog: dict[str, timedelta], now: Any) -> bool:
    """Its message waits behind a backlog: the queue's oldest message is at least as old.

    Queues are first in, first out, so re-sending it would only add a duplicate
    at the back of the line; once the backlog has drained past it and it is still
    pending, it was lost and the relay sends it.
    """
    oldest = backlog.get(delivery.queue)
    if oldest is None:
        return False
    sent_at = delivery.last_published_at or delivery.created_at
    return oldest + _PUBLISH_LAG_TOLERANCE >= now - sent_at


def relay_due_deliveries(*, batch_size: int | None = None) -> int:
    """Re-publish every pending delivery whose deadline has passed. Returns how many.

    Rows are claimed with ``FOR UPDATE SKIP LOCKED`` and their ``due_at`` moved
    forward in a short transaction; messages are sent after it commits, so two
    relays never claim the same row and no network I/O holds a lock. A delivery
    whose message still waits behind a backlog in its queue is not re-sent, only
    looked at again a deadline later (see ``_still_queued``).
    """
    batch_size = batch_size or settings.OUTBOX_RELAY_BATCH
    due = EventDelivery.objects.filter(status=DeliveryStatus.PENDING, due_at__lte=timezone.now())
    if not due.exists():  # the usual pass: one indexed query, no broker round trip
        return 0
    backlog = _backlog_ages()  # never raises: unknown ages are no backlog (re-send)
    actions: dict[int, str] = {}  # per claimed delivery: SEND, WAIT or ORPHAN

    def hold(delivery: EventDelivery, now: datetime) -> None:
        actions[delivery.pk] = _hold(delivery, now, backlog)

    def record_orphans(claimed: list[EventDelivery]) -> None:
        # In the claim's transaction: a delivery whose handler is gone fails for review.
        for delivery in claimed:
            if actions[delivery.pk] == ORPHAN:
                record_delivery_without_handler(
                    delivery=delivery,
                    task_id=delivery_task_id(delivery.event_id, delivery.handler),
                )

    total = 0
    while True:
        claimed = claim(
            EventDelivery.objects.filter(status=DeliveryStatus.PENDING),
            due_field="due_at",
            hold=hold,
            fields=["publish_count", "last_published_at", "due_at"],
            batch_size=batch_size,
            in_claim=record_orphans,
        )
        to_send = [d for d in claimed if actions[d.pk] == SEND]
        orphaned = [d for d in claimed if actions[d.pk] == ORPHAN]
        if not claimed:
            return total
        if deferred := len(claimed) - len(to_send) - len(orphaned):
            logger.info("relay: %d due deliveries still wait behind a backlog", deferred)
        if to_send:
            broker_breaker.reset()  # the relay always tries; it is the recovery path
            sent = publish_deliveries(to_send, on_failure_due_now=False)
            total += sent
            if not sent:
                _relay_retry_soon(to_send)
                return total
        if len(claimed) < batch_size:
            return total


def _hold(delivery: EventDelivery, now: datetime, backlog: dict[str, timedelta]) -> str:
    """Move a claimed delivery forward; say what the relay does with it."""
    handler = get_handler(delivery.handler)
    if handler is None or handler.task is None:
        return ORPHAN  # would be re-published for ever
    if _still_queued(delivery, backlog, now):
        delivery.due_at = now + relay_backoff(0)
        return WAIT
    delivery.publish_count += 1
    delivery.last_published_at = now
    delivery.due_at = now + relay_backoff(delivery.publish_count)
    return SEND


def _relay_retry_soon(unsent: list[EventDelivery]) -> None:
    """The broker refused the relay's sends: try again next pass, without counting them.

    ``publish_count`` counts messages that left; counting refusals would inflate
    it (and the backoff) for every pass of an outage.
    """
    try:
        EventDelivery.objects.filter(pk__in=[d.pk for d in unsent]).update(
            publish_count=F("publish_count") - 1,
            due_at=timezone.now() + timedelta(seconds=settings.OUTBOX_RELAY_INTERVAL),
        )
    except Exception:
        logger.exception("could not reschedule %d unsent deliveries", len(unsent))
