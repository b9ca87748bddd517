"""A token bucket in Redis, shared by every worker process and machine.

One Lua script reads, refills and takes a token atomically, using the Redis
server's clock, so workers with skewed clocks still share one rate.
"""

from __future__ import annotations

import math
import time

from pms.pipeline.redis_client import redis_client

_TAKE = """
local key = KEYS[1]
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local state = redis.call('HMGET', key, 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + (now - ts) * rate / 1000)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', key, math.ceil(burst * 1000 / rate) + 60000)
return wait
"""


def bucket_key(name: str) -> str:
    return f"pms:ratelimit:{name}"


def token_take(*, key: str, rate: float, burst: int) -> float:
    """Take one token; returns 0.0 on success, else seconds until one will be free."""
    script = redis_client().register_script(_TAKE)
    wait_ms = int(script(keys=[bucket_key(key)], args=[rate, max(1, burst)]))
    return wait_ms / 1000.0


def token_acquire(*, key: str, rate: float, burst: int, max_wait: float) -> float:
    """Block until a token is taken, waiting at most ``max_wait`` seconds in all.

    Returns 0.0 when a token was taken, else the wait the caller should schedule
    (a retry countdown) instead of sleeping in the worker.
    """
    deadline = time.monotonic() + max_wait
    while True:
        wait = token_take(key=key, rate=rate, burst=burst)
        if wait <= 0:
            return 0.0
        if time.monotonic() + wait > deadline:
            return math.ceil(wait * 1000) / 1000
        time.sleep(wait)
