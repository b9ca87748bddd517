"""Depth and oldest-message age per declared queue, read from the broker itself.

Redis (kombu's layout): a queue is a list named after it plus one list per
priority step, ``queue + "\\x06\\x16" + str(step)``; producers LPUSH and consumers
BRPOP, so the oldest message of each list is at index -1. Messages carry a
``published_at`` header (see ``pms.monitoring.signals``); the oldest age is the
largest age among the lists' tails. Messages a worker has reserved (acks_late,
prefetch) are no longer in these lists: they count as in progress, not waiting.

RabbitMQ: a passive ``queue_declare`` answers depth (ready messages; those a
worker holds unacked are in progress, as on Redis) and consumer count. The oldest
message cannot be read without delivering it, so its age comes from the publish
log in Redis (``pms.pipeline.waiting``): an estimate (``age_estimated``), and
unknown (None) when the log cannot be read or holds none of the waiting messages.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import redis
from celery import current_app
from kombu.exceptions import OperationalError

from config.queues import QUEUES
from pms.pipeline import waiting

logger = logging.getLogger(__name__)

PUBLISHED_AT_HEADER = "published_at"


@dataclass(frozen=True)
class QueueDepth:
    queue: str
    depth: int | None  # None: the broker could not be read
    oldest_age_seconds: float | None  # None: empty, unknown or broker down
    broker_consumers: int | None = None  # RabbitMQ only; Redis has no consumer registry
    # RabbitMQ: the age comes from the publish log, not from the message itself.
    age_estimated: bool = False


def _published_at(raw: bytes | str | None) -> float | None:
    if raw is None:
        return None
    try:
        message = json.loads(raw)
        value = (message.get("headers") or {}).get(PUBLISHED_AT_HEADER)
        published = float(value) if value is not None else None
    except (ValueError, TypeError, AttributeError):
        return None
    # A header anyone could have written: a time, or unknown (never an age of 1e300 s).
    if published is None or not math.isfinite(published) or published <= 0:
        return None
    return published


def _redis_depths(channel: Any, queues: list[str], now: float) -> list[QueueDepth]:
    client = channel.client
    steps = sorted({channel.priority(step) for step in channel.priority_steps})
    keys_per_queue = {
        queue: list(dict.fromkeys(channel._q_for_pri(queue, step) for step in steps))
        for queue in queues
    }
    with client.pipeline(transaction=False) as pipe:
        for keys in keys_per_queue.values():
            for key in keys:
                pipe.llen(key)
                pipe.lindex(key, -1)
        replies = pipe.execute()
    results = []
    position = 0
    for queue, keys in keys_per_queue.items():
        depth = 0
        oldest: float | None = None
        for _ in keys:
            length, tail = replies[position], replies[position + 1]
            position += 2
            depth += int(length or 0)
            published = _published_at(tail)
            if published is not None and (oldest is None or published < oldest):
                oldest = published
        age = max(0.0, now - oldest) if oldest is not None and depth else None
        results.append(QueueDepth(queue=queue, depth=depth, oldest_age_seconds=age))
    return results


def _amqp_depths(channel: Any, queues: list[str], now: float) -> list[QueueDepth]:
    declared: dict[str, tuple[int, int | None]] = {}
    for queue in queues:
        try:
            ok = channel.queue_declare(queue=queue, passive=True)
            declared[queue] = (int(ok.message_count), int(ok.consumer_count))
        except Exception:  # a queue not declared yet: nothing waits in it
            logger.info("queue %s not declared on the broker", queue)
            declared[queue] = (0, None)
            channel = channel.connection.channel()  # a failed passive declare closes it
    try:
        ages = waiting.oldest_ages({q: depth for q, (depth, _) in declared.items()}, now)
    except redis.RedisError:
        logger.warning("could not read the publish log: oldest ages unknown", exc_info=True)
        ages = {}
    return [
        QueueDepth(
            queue=queue,
            depth=depth,
            oldest_age_seconds=ages.get(queue),
            broker_consumers=consumers,
            age_estimated=True,
        )
        for queue, (depth, consumers) in declared.items()
    ]


def queue_depths(app: Any = None, queues: list[str] | None = None) -> list[QueueDepth]:
    """One entry per queue (every declared queue by default), in table order.

    Never raises for a broker problem: depths are None then, and the caller shows it.
    """
    app = app or current_app
    names = queues or [spec.name for spec in QUEUES]
    try:
        with app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
            channel = connection.default_channel
            if connection.transport.driver_type == "redis":
                return _redis_depths(channel, names, time.time())
            return _amqp_depths(channel, names, time.time())
    except (OSError, OperationalError) as exc:  # the broker is down: expected, one line
        logger.warning("could not read queue depths from the broker: %s", exc)
    except Exception:
        logger.warning("could not read queue depths from the broker", exc_info=True)
    return [QueueDepth(queue=name, depth=None, oldest_age_seconds=None) for name in names]
