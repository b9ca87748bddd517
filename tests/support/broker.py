"""Point the test process's Celery app at a broker, and find a RabbitMQ to test on.

``config.settings`` declares queues for the broker it saw at import time; a test
run on another broker (``TEST_BROKER_URL``, or the RabbitMQ tests beside a Redis
run) re-applies ``config.queues.broker_settings`` so this process declares the
queues exactly as its workers do (RabbitMQ refuses a queue redeclared with other
arguments).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from kombu import Exchange, Queue

from config.queues import QUEUES, QUORUM, broker_is_amqp, broker_settings
from config.redis_sentinel import is_sentinel_url, kombu_broker_url

# A vhost of the tests' own: the tests purge its queues, and a vhost where the
# queues once were declared classic cannot declare them quorum.
DEFAULT_RABBITMQ_TEST_URL = "amqp://guest:guest@127.0.0.1:5672/pms_test"


def configure_celery_for(app: Any, url: str) -> None:
    """``url`` as the settings take it: one URL, a ;-list, or redis+sentinel://."""
    sentinel_options: dict[str, Any] = {}
    if is_sentinel_url(url):
        url, sentinel_options = kombu_broker_url(url)
    os.environ["CELERY_BROKER_URL"] = url  # Celery prefers it to its configuration
    app.conf.broker_url = url
    conf = broker_settings(
        url, visibility_timeout=int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", 3600))
    )
    conf["broker_transport_options"] = {**conf["broker_transport_options"], **sentinel_options}
    app.conf.update(conf)
    for cached in ("queues", "default_queue", "router"):
        app.amqp.__dict__.pop(cached, None)
    app._pool = None  # connections and producers of the previous broker
    app.amqp._producer_pool = None


@contextmanager
def celery_on_broker(app: Any, url: str) -> Iterator[None]:
    previous = os.environ.get("CELERY_BROKER_URL") or app.conf.broker_url
    if previous == url:
        yield
        return
    configure_celery_for(app, url)
    try:
        yield
    finally:
        configure_celery_for(app, previous)


def rabbitmq_test_url() -> str:
    """RABBITMQ_TEST_URL, else TEST_BROKER_URL when it is RabbitMQ, else the tests' vhost."""
    explicit = os.environ.get("RABBITMQ_TEST_URL")
    if explicit:
        return explicit
    test_broker = os.environ.get("TEST_BROKER_URL", "")
    return test_broker if broker_is_amqp(test_broker) else DEFAULT_RABBITMQ_TEST_URL


def _declared(connection: Any, queue: str, arguments: dict[str, str] | None = None) -> bool:
    """Passive declare (``arguments`` None), or an equivalent one: RabbitMQ accepts a
    redeclaration only with the queue's own type and flags."""
    channel = connection.channel()
    try:
        if arguments is None:
            channel.queue_declare(queue, passive=True)
        else:
            channel.queue_declare(queue, durable=True, auto_delete=False, arguments=arguments)
        return True
    except Exception:  # 404 not found / 406 inequivalent: the channel is closed
        return False
    finally:
        with contextlib.suppress(Exception):
            channel.close()


def rabbitmq_unusable(url: str) -> str | None:
    """Why the RabbitMQ tests cannot run against ``url`` (None: they can)."""
    from kombu import Connection

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5672
    vhost = parts.path[1:] or "/"
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return f"RabbitMQ is not reachable at {host}:{port} (set RABBITMQ_TEST_URL)"
    try:
        with Connection(url, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
            for spec in QUEUES:
                if not _declared(connection, spec.name):
                    continue  # the worker declares it
                if not _declared(connection, spec.name, arguments=dict(QUORUM)):
                    return (
                        f"queue {spec.name!r} exists in vhost {vhost!r} as another queue type; "
                        "delete it or use a fresh vhost (README 'RabbitMQ')"
                    )
    except Exception as exc:
        return f"cannot use vhost {vhost!r} on {host}:{port} ({exc})"
    return None


@dataclass(frozen=True)
class QueuedMessage:
    """A task message waiting in a Redis broker, as a worker would receive it."""

    queue: str
    task: str
    task_id: str
    args: list[Any]
    kwargs: dict[str, Any]
    headers: dict[str, Any]


def queued_messages(url: str) -> list[QueuedMessage]:
    """Every message waiting in the declared queues of the Redis broker at ``url``, oldest
    first per queue (kombu pushes on the left). For a broker no worker consumes
    (``own_broker``): what the test process published."""
    import redis

    client = redis.Redis.from_url(url)
    found: list[QueuedMessage] = []
    for queue in sorted(spec.name for spec in QUEUES):
        for raw in reversed(client.lrange(queue, 0, -1)):
            message = json.loads(raw)
            args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
            headers = message["headers"]
            found.append(
                QueuedMessage(queue, headers["task"], headers["id"], args, kwargs, headers)
            )
    return found


def publish_raw(
    app: Any, queue_name: str, body: Any, *, headers: dict[str, Any], priority: int = 0
):
    """A message in ``queue_name`` as another producer would leave it (no Celery task)."""

    queue = Queue(queue_name, Exchange(queue_name), routing_key=queue_name)
    with app.producer_or_acquire() as producer:
        producer.publish(
            body,
            exchange=queue.exchange,
            routing_key=queue_name,
            declare=[queue],
            priority=priority,
            headers=headers,
            serializer="json",
        )
