"""Depth and oldest-message age per declared queue, read from the broker itself.

Redis (kombu's layout): a queue is a list named after it plus one list per
priority step, ``queue + "\\x06\\x16" + str(step)``; producers LPUSH and consumers
BRPOP, so the oldest message of each list is at index -1. Messages carry a
``published_at`` header (see ``pms.monitoring.signals``); the oldest age is the
largest age among the lists' tails. Messages a worker has reserved (acks_late,
prefetch) are no longer in these lists: they count as in progress, not waiting.

RabbitMQ: a passive ``queue_declare`` answers depth and consumer count; the
oldest message cannot be read without consuming it, so its age is unknown (None).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from celery import current_app

from config.queues import QUEUES

logger = logging.getLogger(__name__)

PUBLISHED_AT_HEADER = "published_at"


@dataclass(frozen=True)
class QueueDepth:
    queue: str
    depth: int | None  # None: the broker could not be read
    oldest_age_seconds: float | None  # None: empty, unknown (RabbitMQ) or broker down
    broker_consumers: int | None = None  # RabbitMQ only; Redis has no consumer registry


def _published_at(raw: bytes | str | None) -> float | None:
    if raw is None:
        return None
    try:
        message = json.loads(raw)
        value = (message.get("headers") or {}).get(PUBLISHED_AT_HEADER)
        return float(value) if value is not None else None
    except (ValueError, TypeError, AttributeError):
        return None


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


def _amqp_depths(channel: Any, queues: list[str]) -> list[QueueDepth]:
    results = []
    for queue in queues:
        try:
            declared = channel.queue_declare(queue=queue, passive=True)
            results.append(
                QueueDepth(
                    queue=queue,
                    depth=int(declared.message_count),
                    oldest_age_seconds=None,
                    broker_consumers=int(declared.consumer_count),
                )
            )
        except Exception:  # a queue not declared yet: nothing waits in it
            logger.info("queue %s not declared on the broker", queue)
            results.append(QueueDepth(queue=queue, depth=0, oldest_age_seconds=None))
            channel = channel.connection.channel()  # a failed passive declare closes it
    return results


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
            return _amqp_depths(channel, names)
    except Exception:
        logger.warning("could not read queue depths from the broker", exc_info=True)
        return [QueueDepth(queue=name, depth=None, oldest_age_seconds=None) for name in names]
