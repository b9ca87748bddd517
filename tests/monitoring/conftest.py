"""Fixtures for the monitoring tests: a real webhook receiver on loopback, clean counters."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from pms.monitoring.task_stats import forget_task_stats
from pms.monitoring.workers import forget_workers
from tests.support.http_peer import HttpPeer, Reply, Seen


class WebhookReceiver:
    """Records accepted POSTs in ``calls``; while ``failing``, answers 500 (counted in
    ``refused``) like a receiver that is down."""

    def __init__(self, peer: HttpPeer) -> None:
        self.calls: list[dict[str, Any]] = []
        self.refused = 0
        self.failing = False
        self.url = peer.url("/hook")
        peer.routes["/hook"] = self._receive

    def _receive(self, seen: Seen) -> Reply:
        if self.failing:
            self.refused += 1
            return Reply(500)
        self.calls.append(json.loads(seen.body))
        return Reply(204)


@pytest.fixture
def webhook(peer: HttpPeer) -> WebhookReceiver:
    return WebhookReceiver(peer)


@pytest.fixture(autouse=True)
def _fresh_monitoring_state() -> Iterator[None]:
    forget_workers()
    forget_task_stats()
    yield
    forget_workers()
