"""Change notices for the pages people have open (pms.live), sent after commit.

A notice says *what kind of thing changed and where* (tenant, topic, property,
booking), never the data itself: the live server re-renders the pages it concerns
as each viewer may see them. A notice is not an event. The data is committed, and a
page that misses a notice (live server or Redis away) is re-rendered when it
reconnects, and on its page's refresh timer; so a Redis error here is logged and
dropped, never raised into the work that committed.

Identical notices from one process within ``_QUIET_SECONDS`` are sent once (a
10,000-row import commits 10,000 identical ones). The live server waits longer than
that before it renders (``LIVE_DEBOUNCE_SECONDS``), so the render reads every change
whose notice was folded.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from functools import partial
from typing import Any

import redis
from django.conf import settings
from django.db import transaction

from pms.pipeline.redis_client import redis_client

logger = logging.getLogger(__name__)

# The Redis pub/sub channel the live server subscribes to.
LIVE_CHANNEL = "pms:live"

# Topics: what kind of thing changed (pages subscribe to the topics they show). An
# event's notice has its aggregate type as topic ("booking", "block", "payment",
# "refund", "booking_thread", "maintenance_request": the apps' event catalogues).
CLEANING = "cleaning"
CHANNEL = "channel"
FAILED_TASK = "failed_task"
QUEUES = "queues"
ACCESS = "access"  # a membership or a user changed: that user's live pages re-check

# Aggregates whose id is a booking's (the booking and its message thread).
_BOOKING_AGGREGATES = ("booking", "booking_thread")

_QUIET_SECONDS = 0.1
_recent: dict[tuple[Any, ...], float] = {}
_recent_lock = threading.Lock()


def announce(
    *,
    tenant_id: int | None,
    topic: str,
    property_id: int | None = None,
    booking_id: int | None = None,
    user_id: int | None = None,
) -> None:
    """Tell the open pages, once the current transaction commits, that ``topic`` changed.

    ``tenant_id`` None: not a tenant's data (queue statistics, a user's access).
    Outside a transaction it is sent at once; on rollback, never.
    """
    if not settings.LIVE_UPDATES:
        return
    notice = {"tenant": tenant_id, "topic": topic}
    for key, value in (("property", property_id), ("booking", booking_id), ("user", user_id)):
        if value is not None:
            notice[key] = int(value)
    transaction.on_commit(partial(_send, notice), robust=True)


def announce_event(
    *, tenant_id: int, aggregate_type: str, aggregate_id: Any, payload: dict[str, Any]
) -> None:
    """The notice of a domain event, or of a handler's effect of one: its aggregate's kind."""
    booking_id = payload.get("booking_id")
    if booking_id is None and aggregate_type in _BOOKING_AGGREGATES:
        booking_id = aggregate_id
    announce(
        tenant_id=tenant_id,
        topic=aggregate_type,
        property_id=_int_or_none(payload.get("property_id")),
        booking_id=_int_or_none(booking_id),
    )


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _send(notice: dict[str, Any]) -> None:
    key = tuple(sorted(notice.items()))
    now = time.monotonic()
    with _recent_lock:
        if now - _recent.get(key, -1.0) < _QUIET_SECONDS:
            return
        _recent[key] = now
        if len(_recent) > 10_000:
            _recent.clear()
    try:
        redis_client().publish(LIVE_CHANNEL, json.dumps(notice))
    except redis.RedisError as exc:
        logger.debug("live notice %s not sent (%s); pages catch up on reconnect", notice, exc)
