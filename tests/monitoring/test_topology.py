"""Queue health's view of the broker's nodes and replicas, from a management API on loopback.

A real HTTP peer answers as RabbitMQ's management API does, so each case states the
cluster it pretends to be; the three-node cluster itself is in
tests/config/test_rabbitmq_cluster.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from config.celery import app as celery_app
from config.queues import QUEUES
from pms.models.monitoring import AlertKind, AlertRule
from pms.monitoring.alerts import _evaluate_rule
from pms.monitoring.overview import Overview
from pms.monitoring.task_stats import TaskStats
from pms.monitoring.topology import broker_topology
from tests.support.broker import celery_on_broker
from tests.support.http_peer import HttpPeer, Reply

NODES = ["rabbit@a", "rabbit@b", "rabbit@c"]


@pytest.fixture
def amqp_app() -> Iterator[None]:
    """The app pointed at a RabbitMQ URL (nothing is published; only the URL is read)."""
    with celery_on_broker(celery_app, "amqp://guest:guest@127.0.0.1:9/pms"):
        yield


def _answer(peer: HttpPeer, *, running: list[str], online: list[str], members: list[str]) -> None:
    peer.routes["/api/nodes"] = Reply(
        200, json.dumps([{"name": n, "running": n in running} for n in NODES]).encode()
    )
    queues = [
        {
            "name": spec.name,
            "type": "quorum",
            "leader": online[0] if online else None,
            "members": members,
            "online": online,
        }
        for spec in QUEUES
    ] + [{"name": "someone-elses", "type": "classic"}]
    peer.routes["/api/queues/pms"] = Reply(200, json.dumps(queues).encode())


def _firing(rule_kind: str) -> dict[str, Any]:
    overview = Overview(queues=[], workers=[], task_stats=TaskStats(), beat_last_tick=None)
    overview.broker = broker_topology()
    return _evaluate_rule(AlertRule(kind=rule_kind, threshold=1), overview).firing


def test_a_healthy_cluster_raises_nothing(amqp_app: None, peer: HttpPeer, settings: Any) -> None:
    settings.RABBITMQ_MANAGEMENT_URLS = [peer.url("")]
    _answer(peer, running=NODES, online=NODES, members=NODES)
    topology = broker_topology()
    assert [q.queue for q in topology.queues] == [spec.name for spec in QUEUES]
    assert not topology.under_replicated and not topology.quorum_lost
    assert not _firing(AlertKind.QUEUE_UNDER_REPLICATED)
    assert peer.hits("/api/nodes")[0].headers["Authorization"].startswith("Basic ")


def test_a_lost_node_under_replicates_every_queue_in_one_alert(
    amqp_app: None, peer: HttpPeer, settings: Any
) -> None:
    settings.RABBITMQ_MANAGEMENT_URLS = [peer.url("")]
    _answer(peer, running=NODES[:2], online=NODES[:2], members=NODES)
    topology = broker_topology()
    assert len(topology.under_replicated) == len(QUEUES) and not topology.quorum_lost
    firing = _firing(AlertKind.QUEUE_UNDER_REPLICATED)
    assert list(firing) == ["quorum-queues"]
    assert "offline: rabbit@c" in firing["quorum-queues"].message
    assert "quorum lost" not in firing["quorum-queues"].message


def test_two_lost_nodes_lose_the_quorum_and_say_so(
    amqp_app: None, peer: HttpPeer, settings: Any
) -> None:
    settings.RABBITMQ_MANAGEMENT_URLS = [peer.url("")]
    _answer(peer, running=NODES[:1], online=NODES[:1], members=NODES)
    assert len(broker_topology().quorum_lost) == len(QUEUES)
    assert "quorum lost, accepting nothing: bookings" in (
        _firing(AlertKind.QUEUE_UNDER_REPLICATED)["quorum-queues"].message
    )


def test_a_single_node_is_not_under_replicated(
    amqp_app: None, peer: HttpPeer, settings: Any
) -> None:
    """BROKER_QUORUM_REPLICAS is capped at the cluster's size: one node wants one replica."""
    settings.RABBITMQ_MANAGEMENT_URLS = [peer.url("")]
    peer.routes["/api/nodes"] = Reply(200, json.dumps([{"name": "solo", "running": True}]).encode())
    queues = [
        {
            "name": s.name,
            "type": "quorum",
            "leader": "solo",
            "members": ["solo"],
            "online": ["solo"],
        }
        for s in QUEUES
    ]
    peer.routes["/api/queues/pms"] = Reply(200, json.dumps(queues).encode())
    assert all(q.expected == 1 for q in broker_topology().queues)
    assert not _firing(AlertKind.QUEUE_UNDER_REPLICATED)


def test_an_unreachable_api_is_not_measured_so_nothing_opens_or_resolves(
    amqp_app: None, peer: HttpPeer, settings: Any
) -> None:
    peer.routes["/api/nodes"] = Reply(503)
    settings.RABBITMQ_MANAGEMENT_URLS = [peer.url(""), "http://127.0.0.1:9"]
    topology = broker_topology()
    assert topology.configured and "could not read the management API" in topology.error
    assert "guest" not in topology.error  # host:port only, never the credentials
    overview = Overview(queues=[], workers=[], task_stats=TaskStats(), beat_last_tick=None)
    overview.broker = topology
    result = _evaluate_rule(AlertRule(kind=AlertKind.QUEUE_UNDER_REPLICATED, threshold=1), overview)
    assert result.known == set() and not result.firing


def test_on_redis_there_is_no_broker_topology() -> None:
    with celery_on_broker(celery_app, "redis://127.0.0.1:9/0"):
        assert not broker_topology().configured


@pytest.mark.parametrize(
    ("reply", "says"),
    [
        (Reply(401), "needs the management plugin's 'monitoring' tag"),
        (Reply(200, b'{"error": "not a list"}'), "did not answer a list of objects"),
        (Reply(200, b'[{"running": true}]'), "'name'"),
    ],
)
def test_a_bad_answer_is_a_readable_error_not_a_crash(
    amqp_app: None, peer: HttpPeer, settings: Any, reply: Reply, says: str
) -> None:
    """The page, /metrics and the watchdog all read this: it must never raise."""
    peer.routes["/api/nodes"] = reply
    peer.routes["/api/queues/pms"] = Reply(200, b"[]")
    settings.RABBITMQ_MANAGEMENT_URLS = [peer.url("")]
    topology = broker_topology()
    assert says in topology.error and not topology.queues
