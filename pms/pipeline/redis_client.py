"""The pipeline's Redis client (poison counters, dispatcher kicks, publish logs)."""

from __future__ import annotations

from functools import cache

import redis
from django.conf import settings

from config.redis_sentinel import is_sentinel_url, master_client

# Keys the queue monitoring keeps (task counts, runtimes, the publish log, beat's tick).
MONITORING_PREFIX = "pms:monitoring"


@cache
def redis_client() -> redis.Redis:
    """One client per process; through Sentinel it follows the primary across failovers."""
    options = {"socket_connect_timeout": 2, "socket_timeout": 2, "health_check_interval": 30}
    if is_sentinel_url(settings.REDIS_URL):
        client: redis.Redis = master_client(settings.REDIS_URL, **options)
        return client
    return redis.Redis.from_url(settings.REDIS_URL, **options)
