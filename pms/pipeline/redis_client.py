"""The pipeline's Redis client (poison counters, dispatcher kicks, publish logs)."""

from __future__ import annotations

from functools import cache

import redis
from django.conf import settings

# Keys the queue monitoring keeps (task counts, runtimes, the publish log, beat's tick).
MONITORING_PREFIX = "pms:monitoring"


@cache
def redis_client() -> redis.Redis:
    return redis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2, health_check_interval=30
    )
