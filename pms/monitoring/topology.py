"""Where the messages live: the broker's nodes, each quorum queue's replicas, Redis' Sentinels.

RabbitMQ: read from the management API (``RABBITMQ_MANAGEMENT_URLS``, one URL per node;
the first that answers is read, since any node answers for the whole cluster). A
quorum queue is *under-replicated* when fewer of its members are online than it
should have (``BROKER_QUORUM_REPLICAS``, at most the cluster's size), and has *lost its
quorum* when a majority of its members is offline: it accepts and delivers nothing
until they return.

Redis through Sentinel: every configured Sentinel is asked for the primary and
``SENTINEL CKQUORUM``; the quorum is lost when too few Sentinels can reach each other
to agree on a failover (a dead primary would then not be replaced).

Never raises for an unreachable API or Sentinel: the view says it could not read
(``error``), and the alert rules treat it as not measured.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import redis
import requests
from celery import current_app
from django.conf import settings

from config.queues import QUEUES, broker_is_amqp
from config.redis_sentinel import is_sentinel_url, parse_sentinel_url

logger = logging.getLogger(__name__)

TIMEOUT = 2  # per URL tried: a dead node costs the page and the watchdog this much


@dataclass(frozen=True)
class BrokerNode:
    name: str
    running: bool


@dataclass(frozen=True)
class QueueReplicas:
    queue: str
    leader: str | None
    members: tuple[str, ...]
    online: tuple[str, ...]
    expected: int

    @property
    def under_replicated(self) -> bool:
        return len(self.online) < self.expected

    @property
    def quorum_lost(self) -> bool:
        return len(self.online) <= len(self.members) // 2

    @property
    def offline(self) -> tuple[str, ...]:
        return tuple(member for member in self.members if member not in self.online)


@dataclass(frozen=True)
class BrokerTopology:
    """``configured`` False: the broker is not RabbitMQ (nothing to show)."""

    configured: bool
    nodes: tuple[BrokerNode, ...] = ()
    queues: tuple[QueueReplicas, ...] = ()
    read_from: str = ""
    error: str = ""

    @property
    def under_replicated(self) -> list[QueueReplicas]:
        return [queue for queue in self.queues if queue.under_replicated]

    @property
    def quorum_lost(self) -> list[QueueReplicas]:
        return [queue for queue in self.queues if queue.quorum_lost]


@dataclass(frozen=True)
class SentinelView:
    address: str
    reachable: bool
    primary: str = ""
    quorum_ok: bool = False
    detail: str = ""


@dataclass(frozen=True)
class SentinelHealth:
    """``configured`` False: Redis is one server (REDIS_URL is not redis+sentinel://)."""

    configured: bool
    master: str = ""
    sentinels: tuple[SentinelView, ...] = field(default_factory=tuple)
    replicas: int | None = None

    @property
    def primary(self) -> str:
        named = {view.primary for view in self.sentinels if view.primary}
        return named.pop() if len(named) == 1 else ", ".join(sorted(named))

    @property
    def quorum_lost(self) -> bool:
        """No reachable Sentinel can authorise a failover (or a majority is unreachable)."""
        reachable = [view for view in self.sentinels if view.reachable]
        if len(reachable) <= len(self.sentinels) // 2:
            return True
        return not any(view.quorum_ok for view in reachable)


# --- RabbitMQ ----------------------------------------------------------------------------


def _broker_url() -> str:
    """The URL the app really uses (Celery prefers CELERY_BROKER_URL from the environment)."""
    return str(current_app.conf.broker_url or "")


def management_urls() -> list[str]:
    """RABBITMQ_MANAGEMENT_URLS, else each broker node's host on the management port."""
    if settings.RABBITMQ_MANAGEMENT_URLS:
        return list(settings.RABBITMQ_MANAGEMENT_URLS)
    urls = []
    for broker in _broker_url().split(";"):
        parts = urlsplit(broker.strip())
        # TLS to the broker: TLS to its management API too (on its default port, 15671).
        scheme, port = ("https", 15671) if parts.scheme == "amqps" else ("http", 15672)
        auth = f"{parts.username or 'guest'}:{parts.password or 'guest'}@"
        urls.append(f"{scheme}://{auth}{parts.hostname or '127.0.0.1'}:{port}")
    return urls


def _vhost() -> str:
    first = urlsplit(_broker_url().split(";")[0].strip())
    return first.path[1:] or "/"


def _where(base: str) -> str:
    """host:port of a management URL, never its credentials (shown on the page, logged)."""
    parts = urlsplit(base)
    try:
        return f"{parts.hostname}:{parts.port or 15672}"
    except ValueError:  # a port that is not a number
        return f"{parts.hostname}:(bad port)"


def _get(base: str, path: str) -> list[dict[str, Any]]:
    """A JSON list from the management API; ValueError for anything else."""
    parts = urlsplit(base)
    auth = (unquote(parts.username or "guest"), unquote(parts.password or "guest"))
    origin = f"{parts.scheme}://{parts.hostname}:{parts.port or 15672}"
    reply = requests.get(origin + path, auth=auth, timeout=TIMEOUT)
    if reply.status_code in (401, 403):
        raise ValueError(
            f"HTTP {reply.status_code}: the user needs the management plugin's "
            "'monitoring' tag (rabbitmqctl set_user_tags <user> monitoring)"
        )
    reply.raise_for_status()
    answer = reply.json()
    if not isinstance(answer, list) or not all(isinstance(item, dict) for item in answer):
        raise ValueError(f"{path} did not answer a list of objects")
    return answer


def broker_topology() -> BrokerTopology:
    if not broker_is_amqp(_broker_url()):
        return BrokerTopology(configured=False)
    errors = []
    for base in management_urls():
        where = _where(base)
        try:
            nodes_reply = _get(base, "/api/nodes")
            queues_reply = _get(base, f"/api/queues/{quote(_vhost(), safe='')}")
            nodes = tuple(
                BrokerNode(str(item["name"]), bool(item.get("running"))) for item in nodes_reply
            )
            queues = _replicas(queues_reply, cluster_size=len(nodes))
        except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
            errors.append(f"{where}: {exc}")
            continue
        return BrokerTopology(configured=True, nodes=nodes, queues=queues, read_from=where)
    logger.warning("could not read the broker's management API: %s", "; ".join(errors))
    return BrokerTopology(
        configured=True,
        error="could not read the management API: " + "; ".join(errors)[:300],
    )


def _replicas(
    queues_reply: list[dict[str, Any]], *, cluster_size: int
) -> tuple[QueueReplicas, ...]:
    expected = max(1, min(settings.BROKER_QUORUM_REPLICAS, cluster_size))
    ours = {spec.name for spec in QUEUES}
    found = []
    for item in queues_reply:
        if item.get("name") not in ours or item.get("type") != "quorum":
            continue
        members = tuple(str(name) for name in item.get("members") or ())
        online = tuple(str(name) for name in item.get("online") or ())
        leader = item.get("leader")
        found.append(
            QueueReplicas(
                queue=str(item["name"]),
                leader=str(leader) if leader else None,
                members=members,
                online=online,
                expected=expected,
            )
        )
    order = {spec.name: index for index, spec in enumerate(QUEUES)}
    return tuple(sorted(found, key=lambda queue: order[queue.queue]))


# --- Redis Sentinel ---------------------------------------------------------------------------


def sentinel_health() -> SentinelHealth:
    if not is_sentinel_url(settings.REDIS_URL):
        return SentinelHealth(configured=False)
    target = parse_sentinel_url(settings.REDIS_URL)
    views = []
    replicas: int | None = None
    for host, port in target.sentinels:
        address = f"{host}:{port}"
        client = redis.Redis(
            host=host, port=port, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
        )
        try:
            state: Any = client.sentinel_master(target.master)
            primary = f"{state.get('ip')}:{state.get('port')}"
            replicas = int(state.get("num-slaves", 0)) if replicas is None else replicas
            try:
                client.sentinel_ckquorum(target.master)
                quorum_ok, detail = True, "quorum reachable"
            except redis.ResponseError as exc:
                quorum_ok, detail = False, str(exc)
            views.append(SentinelView(address, True, primary, quorum_ok, detail))
        except redis.RedisError as exc:
            views.append(SentinelView(address, False, detail=str(exc) or type(exc).__name__))
        finally:
            client.close()
    return SentinelHealth(
        configured=True, master=target.master, sentinels=tuple(views), replicas=replicas
    )
