"""Change notices for the pages people have open (pms.live), sent after commit.

A notice says *what kind of thing changed and where* (tenant, topic, property,
booking), never the data itself: the live server re-renders the pages it concerns
as each viewer may see them. A notice is not an event. The data is committed, and a
page that misses a notice (live server or Redis away) is re-rendered when it
reconnects, and on its page's refresh timer; so a Redis error here is logged and
dropped, never raised into the work that committed.

A transaction's notices leave together after its commit, identical ones once (a
10,000-row import commits 10,000 identical ones), in one round trip. They go through
a client of their own that tries once with short timeouts: with Redis away, the
committing request loses half a second, not the retries of the cache's client.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from functools import cache
from typing import Any

import redis
from django.conf import settings
from django.db import connection, transaction
from redis.backoff import NoBackoff
from redis.retry import Retry

from config.redis_sentinel import is_sentinel_url, master_client

logger = logging.getLogger(__name__)

# The Redis pub/sub channel the live server subscribes to, one per database (live_channel).
LIVE_CHANNEL = "pms:live"


def live_channel() -> str:
    """This stack's channel: ``LIVE_CHANNEL`` and the name of its PostgreSQL database.

    Redis pub/sub ignores the database number, so two stacks sharing one Redis (a
    staging and a demo, or ``make test`` beside ``make mutation``) would otherwise see
    each other's notices. The web, the workers and the live server of one stack share
    a database, so they agree on the channel.
    """
    return f"{LIVE_CHANNEL}:{connection.settings_dict['NAME']}"


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
    notice: dict[str, Any] = {"tenant": tenant_id, "topic": topic}
    for key, value in (("property", property_id), ("booking", booking_id), ("user", user_id)):
        if value is not None:
            notice[key] = int(value)
    text = json.dumps(notice, sort_keys=True)
    if connection.in_atomic_block:
        _batch().add(text)
    else:
        _send([text])


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


def _batch() -> set[str]:
    """The current transaction's notices, sent by one on-commit hook.

    The hook is found again by its place in the connection's on-commit list: after a
    commit or a rollback that place holds another hook (or none), and a new batch starts.
    """
    hooks = connection.run_on_commit
    open_batch = getattr(connection, "pms_live_batch", None)
    if open_batch is not None:
        index, hook, pending = open_batch
        if index < len(hooks) and hooks[index][1] is hook:
            return pending
    notices: set[str] = set()

    def flush() -> None:
        _send(sorted(notices))

    transaction.on_commit(flush, robust=True)
    batch = (len(connection.run_on_commit) - 1, flush, notices)
    connection.pms_live_batch = batch  # type: ignore[attr-defined]
    return notices


@cache
def _client() -> redis.Redis:
    options: dict[str, Any] = {
        "socket_connect_timeout": 0.5,
        "socket_timeout": 0.5,
        "retry": Retry(NoBackoff(), 0),
    }
    if is_sentinel_url(settings.REDIS_URL):
        client: redis.Redis = master_client(settings.REDIS_URL, **options)
        return client
    return redis.Redis.from_url(settings.REDIS_URL, **options)


def _send(notices: Iterable[str]) -> None:
    channel = live_channel()
    try:
        with _client().pipeline(transaction=False) as pipe:
            for text in notices:
                pipe.publish(channel, text)
            pipe.execute()
    except (redis.RedisError, OSError) as exc:
        logger.debug("live notices not sent (%s); open pages catch up on their timers", exc)
