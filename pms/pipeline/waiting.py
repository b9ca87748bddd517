"""Oldest-message age on RabbitMQ, from a publish log kept in Redis.

RabbitMQ answers a queue's depth (passive ``queue_declare``) but shows no message
without delivering it, and quorum queues expose no head-message timestamp. So on
an AMQP broker every publish adds ``task id -> due time`` (the publish time, or
the ETA of a countdown) to a sorted set per queue in Redis (REDIS_URL), and the
worker that receives the message removes it (``task_received``, in the worker's
main process): what is left is what was published and not yet taken.

A queue is first in, first out, so with ``depth`` messages waiting the oldest of
them is the ``depth``-th most recent due entry; older entries belong to messages
that left without a worker receiving them (broker restarted empty, purged,
expired) and are ignored, and dropped once the queue is seen empty. The figure
is a lower bound when some waiting messages are not in the log (a message given
back by a worker that died holding it, or published while Redis was down), and
unknown (None) when none of them is. A relay re-send of a message still waiting
keeps the first publish time, so a stuck queue keeps ageing.

On Redis the broker itself holds the answer (``broker_stats``): nothing is logged.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from functools import cache
from typing import Any

import redis
from celery import current_app

from config.queues import QUEUE_NAMES, broker_is_amqp, queue_for_routing_key
from pms.pipeline.redis_client import MONITORING_PREFIX, redis_client

logger = logging.getLogger(__name__)

# A queue seen empty drops entries whose due time is older than this (seconds).
STALE_WHEN_EMPTY = 60
_last_warning = 0.0


def waiting_key(queue: str) -> str:
    return f"{MONITORING_PREFIX}:waiting:{queue}"


@cache
def _is_amqp(broker_url: str | None) -> bool:
    return broker_is_amqp(broker_url)


def logging_enabled(app: Any = None) -> bool:
    return _is_amqp((app or current_app).conf.broker_url)


def _warn(action: str) -> None:
    global _last_warning
    now = time.monotonic()
    if now - _last_warning > 60:
        _last_warning = now
        logger.warning("could not %s the queue publish log in Redis", action, exc_info=True)


def _due(headers: dict[str, Any], now: float) -> float:
    eta = headers.get("eta")
    if not eta:
        return now
    try:
        return max(now, datetime.fromisoformat(str(eta)).timestamp())
    except ValueError:
        return now


def note_published(routing_key: str | None, headers: dict[str, Any], now: float) -> None:
    queue = queue_for_routing_key(routing_key)
    task_id = headers.get("id")
    if queue is None or not task_id:
        return
    try:
        # NX: a re-send of a message that still waits keeps its first time.
        redis_client().zadd(waiting_key(queue), {task_id: _due(headers, now)}, nx=True)
    except redis.RedisError:
        _warn("add to")


def note_received(routing_key: str | None, task_id: str | None) -> None:
    queue = queue_for_routing_key(routing_key)
    if queue is None or not task_id:
        return
    try:
        redis_client().zrem(waiting_key(queue), task_id)
    except redis.RedisError:
        _warn("remove from")


def oldest_ages(depths: dict[str, int], now: float) -> dict[str, float | None]:
    """Age of the oldest waiting message per queue, from ``depth`` per queue."""
    ages: dict[str, float | None] = dict.fromkeys(depths)
    busy = [queue for queue, depth in depths.items() if depth > 0]
    client = redis_client()
    with client.pipeline(transaction=False) as pipe:
        for queue, depth in depths.items():
            if depth <= 0:
                pipe.zremrangebyscore(waiting_key(queue), "-inf", now - STALE_WHEN_EMPTY)
        for queue in busy:
            pipe.zcount(waiting_key(queue), "-inf", now)
        counts = pipe.execute()[len(depths) - len(busy) :]
    ranks = {q: max(0, int(c) - depths[q]) for q, c in zip(busy, counts, strict=True) if c}
    if not ranks:
        return ages
    with client.pipeline(transaction=False) as pipe:
        for queue, rank in ranks.items():
            pipe.zrange(waiting_key(queue), rank, rank, withscores=True)
        replies = pipe.execute()
    for queue, reply in zip(ranks, replies, strict=True):
        if reply:
            ages[queue] = max(0.0, now - float(reply[0][1]))
    return ages


def forget(queues: list[str] | None = None) -> None:
    """Drop the log (tests; a broker replaced by an empty one)."""
    names = queues or sorted(QUEUE_NAMES)
    redis_client().delete(*(waiting_key(queue) for queue in names))
