"""A guard around one kombu failure path that kills Redis-backed workers.

When the broker connection drops while a worker holds unacknowledged messages,
Celery closes the broken connection and kombu's Redis channel tries to restore
those messages in ``close()``. By then the transport's client is gone, so kombu
raises ``AttributeError: 'NoneType' object has no attribute 'hostname'`` from
``_connparams``; Celery's ``ignore_errors`` does not cover it and the worker
stops with "Unrecoverable error" (seen here in the broker-outage tests; the
upstream family of reports: celery/celery#9250, celery/kombu#582).

Swallowing it loses nothing: the messages stay in Redis's unacked hash and kombu
restores them after the visibility timeout, and if Redis came back empty the
outbox relay re-sends every delivery that was not applied.
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.transport import redis as kombu_redis

logger = logging.getLogger(__name__)


def install() -> None:
    channel = kombu_redis.Channel
    if getattr(channel.close, "_pms_guarded", False):
        return
    original_close = channel.close

    def close(self: Any) -> None:
        try:
            original_close(self)
        except AttributeError as exc:
            transport = getattr(self, "connection", None)
            if transport is not None and getattr(transport, "client", None) is not None:
                raise  # not the broken-connection case: let it surface
            self.closed = True
            logger.warning(
                "broker connection lost while closing a channel (%s); unacknowledged "
                "messages will be restored by Redis visibility or re-sent by the relay",
                exc,
            )

    close._pms_guarded = True  # type: ignore[attr-defined]
    channel.close = close  # type: ignore[method-assign]  # the patch is the point
