"""Depth and oldest age read from the real Redis broker, in kombu's own layout."""

from __future__ import annotations

import time
from typing import Any

import pytest

from config.celery import app as celery_app
from config.queues import broker_is_amqp
from pms.pipeline.broker_stats import queue_depths
from testkit.processes import free_port
from tests.support.broker import publish_raw

PROBE_QUEUE = "monitoring-probe"  # not in the table: nobody consumes it


def _publish(priority: int, published_at: Any) -> None:
    publish_raw(
        celery_app,
        PROBE_QUEUE,
        {"probe": True},
        headers={"published_at": published_at},
        priority=priority,
    )


def _purge() -> None:
    with celery_app.connection_for_write() as connection:
        channel: Any = connection.default_channel  # kombu's Redis channel
        for step in channel.priority_steps:
            channel.client.delete(channel._q_for_pri(PROBE_QUEUE, step))


def test_depth_counts_every_priority_sub_queue_and_age_is_the_oldest_tail(broker):
    if broker_is_amqp(broker.url):
        pytest.skip("kombu's Redis layout; RabbitMQ's figures: tests/config/test_rabbitmq.py")
    _purge()
    try:
        now = time.time()
        _publish(0, now - 5)
        _publish(0, now - 1)
        _publish(5, now - 120)  # oldest, in a priority sub-queue
        _publish(9, now - 30)
        (stats,) = queue_depths(queues=[PROBE_QUEUE])
        assert stats.depth == 4
        assert stats.oldest_age_seconds is not None
        assert 119 <= stats.oldest_age_seconds < 130
    finally:
        _purge()
    (empty,) = queue_depths(queues=[PROBE_QUEUE])
    assert empty.depth == 0 and empty.oldest_age_seconds is None


def test_a_tail_whose_publish_time_is_nonsense_has_no_age(broker):
    """The header is whatever the producer wrote: an absurd one is no age, not 1e300 s (a
    figure the relay could not turn into a time, and queue health would show)."""
    if broker_is_amqp(broker.url):
        pytest.skip("kombu's Redis layout; RabbitMQ's figures: tests/config/test_rabbitmq.py")
    _purge()
    try:
        for nonsense in (-1e300, "-inf", "nan", 0, "yesterday"):
            _publish(0, nonsense)
            (stats,) = queue_depths(queues=[PROBE_QUEUE])
            assert stats.oldest_age_seconds is None, nonsense
        assert stats.depth == 5
        _publish(5, time.time() - 60)  # a real one beside them still counts
        (stats,) = queue_depths(queues=[PROBE_QUEUE])
        assert stats.oldest_age_seconds is not None and 59 <= stats.oldest_age_seconds < 70
    finally:
        _purge()


def test_an_unreachable_broker_reports_unknown_not_zero(broker, monkeypatch):
    # Celery prefers CELERY_BROKER_URL from the environment over its configuration.
    monkeypatch.setenv("CELERY_BROKER_URL", f"redis://127.0.0.1:{free_port()}/0")
    stats = queue_depths(queues=["bulk"])
    monkeypatch.undo()
    assert stats[0].depth is None
