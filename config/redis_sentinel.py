"""Redis through Sentinel: one URL for the cache, the pipeline's client and the broker.

``REDIS_URL=redis+sentinel://[:password@]host:port,host:port,host:port/<name>/<db>``
names every Sentinel and the monitored primary's name. Clients ask a Sentinel for the
current primary and ask again when it fails over: a connection to the old primary
that breaks, or that answers READONLY because it came back as a replica, is dropped
and the next command goes to the new primary.

- Django's cache (``django.core.cache.backends.redis.RedisCache``) takes
  ``SentinelPool`` as its ``pool_class``; Django's own backend stays (django-redis
  would replace it, its serializer and its keys, for this one feature).
- The pipeline's client (``pms.pipeline.redis_client``) is ``Sentinel.master_for``.
- Celery's broker, when Redis is the broker, is kombu's Sentinel transport:
  ``kombu_broker_url`` gives its ``sentinel://...;sentinel://...`` form and
  ``master_name``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from redis.sentinel import Sentinel, SentinelConnectionPool

SCHEME = "redis+sentinel"


@dataclass(frozen=True)
class SentinelTarget:
    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int
    password: str | None


def is_sentinel_url(url: str | None) -> bool:
    return (url or "").lower().startswith(SCHEME + "://")


def parse_sentinel_url(url: str) -> SentinelTarget:
    """The Sentinels, the primary's name, the database and the password of ``url``.

    Raises ValueError with a sentence that names what is wrong (settings show it).
    """
    parts = urlsplit(url)
    if parts.scheme.lower() != SCHEME:
        raise ValueError(f"not a {SCHEME}:// URL")
    netloc = parts.netloc.rsplit("@", 1)
    credentials, hosts = (netloc[0], netloc[1]) if len(netloc) == 2 else ("", netloc[0])
    password = unquote(credentials.split(":", 1)[1]) if ":" in credentials else None
    sentinels = []
    for host_port in filter(None, hosts.split(",")):
        host, _, port = host_port.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"Sentinel {host_port!r} is not host:port")
        sentinels.append((host, int(port)))
    if not sentinels:
        raise ValueError("no Sentinel host:port given")
    path = [segment for segment in parts.path.split("/") if segment]
    if not path:
        raise ValueError("the monitored primary's name is missing (/<name>/<db>)")
    db = path[1] if len(path) > 1 else "0"
    if not db.isdigit():
        raise ValueError(f"database {db!r} is not a number")
    return SentinelTarget(tuple(sentinels), unquote(path[0]), int(db), password or None)


def sentinel_manager(target: SentinelTarget, **connection: Any) -> Sentinel:
    timeouts: dict[str, Any] = {
        key: connection[key]
        for key in ("socket_timeout", "socket_connect_timeout")
        if key in connection
    }
    return Sentinel(list(target.sentinels), sentinel_kwargs=timeouts, **connection)


def master_client(url: str, **connection: Any) -> Any:
    """A redis-py client of the current primary (``redis.Redis`` with a Sentinel pool)."""
    target = parse_sentinel_url(url)
    return sentinel_manager(target, **connection).master_for(
        target.master, db=target.db, password=target.password
    )


class SentinelPool(SentinelConnectionPool):
    """A ``SentinelConnectionPool`` Django's Redis cache can build from its LOCATION."""

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> SentinelPool:  # type: ignore[override]
        target = parse_sentinel_url(url)
        kwargs.pop("db", None)
        connection = {
            key: kwargs[key]
            for key in ("socket_timeout", "socket_connect_timeout")
            if key in kwargs
        }
        return cls(
            target.master,
            sentinel_manager(target, **connection),
            db=target.db,
            password=target.password,
            **kwargs,
        )


def kombu_broker_url(url: str) -> tuple[str, dict[str, Any]]:
    """kombu's Sentinel transport form of ``url`` and its transport options."""
    target = parse_sentinel_url(url)
    auth = f":{quote(target.password, safe='')}@" if target.password else ""
    broker = ";".join(
        f"sentinel://{auth}{host}:{port}/{target.db}" for host, port in target.sentinels
    )
    return broker, {"master_name": target.master}
