"""Every Celery queue of the product, declared once.

The table is the single source of truth: Celery's ``task_queues`` and
``task_routes`` are built from it, the handler registry refuses a queue that is
not in it, and the queue-health tooling iterates over it. With
``task_create_missing_queues`` off, a task sent to a name that is not here fails
at publish time instead of silently creating a queue that nobody consumes.

The broker decides how a queue is declared (``broker_settings``): on RabbitMQ
every queue is a quorum queue (replicated, survives a node loss) behind a topic
exchange (Celery's native delayed delivery, which keeps countdown retries in the
broker instead of in worker memory, routes through topic exchanges only), and
publishes are confirmed; on Redis the declarations stay plain and kombu's Redis
transport options apply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from kombu import Exchange, Queue
from kombu.transport.native_delayed_delivery import MAX_NUMBER_OF_BITS_TO_USE


@dataclass(frozen=True)
class QueueSpec:
    name: str
    purpose: str
    worker_group: str


QUEUES: tuple[QueueSpec, ...] = (
    QueueSpec("bookings", "booking lifecycle, availability and calendar", "operational"),
    # Threads, not processes (the Procfile's -P threads): its work waits on SMTP and SMS
    # gateways, and 16 threads cost one process's memory (bench/RESULTS.md, bench-pools).
    QueueSpec("messaging", "guest email/SMS, manager notifications, threads", "messaging"),
    QueueSpec("accounting", "revenue and refund ledger entries", "operational"),
    QueueSpec("default", "housekeeping: outbox relay, queue sampling, purges", "operational"),
    QueueSpec("payments", "payments and refunds, never behind bulk work", "payments"),
    QueueSpec("fallback", "manual-review handling of failed tasks, staff alerts", "payments"),
    # The automation group is the background group: it runs at a lower CPU priority
    # (the Procfile's BULK_NICE), so bulk work takes the CPU operational work leaves.
    QueueSpec("automation", "cleaning runs, reminders, maintenance workflow", "automation"),
    QueueSpec(
        "messaging_batch",
        "reminders, cleaning lists, notices: admitted per tenant, never ahead of messaging",
        "automation",
    ),
    QueueSpec(
        "bulk",
        "channel imports and resyncs (capped per feed host), deliveries of imported blocks",
        "automation",
    ),
    QueueSpec("channelsync", "channel-sync handlers, poll scheduling, sweeps, alerts", "sync"),
    QueueSpec(
        "outbound",
        "requests to tenants' receivers: webhooks, channel pushes (capped per endpoint)",
        "outbound",
    ),
)

QUEUE_NAMES: frozenset[str] = frozenset(spec.name for spec in QUEUES)
DEFAULT_QUEUE = "default"

# Task name globs -> queue. Event handler tasks are published with an explicit
# queue taken from the handler registry, so they need no entry here.
ROUTES: dict[str, str] = {
    "pms.tasks.relay_*": "default",
    "pms.tasks.fair_*": "default",
    "pms.tasks.purge_*": "default",
    "pms.tasks.alert_staff_*": "fallback",
    "pms.tasks.probe_*": "default",
    "pms.tasks.monitoring_*": "default",
    # Alerts about stuck queues must not wait behind them: another worker group.
    "pms.tasks.ops_alerts_*": "fallback",
    "bookings.tasks.*": "bookings",
    # Guest and manager messages are operational; the rest of automation is not.
    # Globs are tried in order: the specific one must come first.
    "automation.tasks.send_*": "messaging",
    "automation.tasks.*": "automation",
    # Requests to tenants' receivers run on their own worker group; imports (bulk CPU
    # work too: parse and apply a feed) on the background group. Fair work items name
    # the queue too; these cover a direct send such as a push follow-up.
    "channelsync.tasks.import_channel": "bulk",
    "channelsync.tasks.push_channel": "outbound",
    "channelsync.tasks.send_webhook": "outbound",
    "channelsync.tasks.*": "channelsync",
}


# RabbitMQ's native delayed delivery puts the delay's 28 binary digits in front of the
# routing key ("0.0.1.0...1.bookings"); the message still lands in the queue at the end.
_DELAY_BITS = re.compile(rf"^(?:[01]\.){{{MAX_NUMBER_OF_BITS_TO_USE}}}")


def queue_for_routing_key(routing_key: str | None) -> str | None:
    """The declared queue a delivered message came from, by its routing key (None: not ours)."""
    name = _DELAY_BITS.sub("", routing_key or "", count=1)
    return name if name in QUEUE_NAMES else None


def worker_groups() -> dict[str, list[str]]:
    """Queue names per worker group, in table order (used by the Procfile docs and tests)."""
    groups: dict[str, list[str]] = {}
    for spec in QUEUES:
        groups.setdefault(spec.worker_group, []).append(spec.name)
    return groups


AMQP_SCHEMES = frozenset({"amqp", "amqps", "pyamqp", "librabbitmq"})
QUORUM = {"x-queue-type": "quorum"}


def broker_is_amqp(broker_url: str | None) -> bool:
    """True for a RabbitMQ URL (``amqp://``, ``pyamqp://``...); the first of a failover list."""
    first = (broker_url or "").split(";")[0].strip()
    return urlsplit(first).scheme.lower() in AMQP_SCHEMES


def task_queues(broker_url: str | None = None) -> tuple[Queue, ...]:
    """One exchange per queue, routing key = queue name.

    Redis: direct exchanges, what kombu would create by default. RabbitMQ: quorum
    queues behind topic exchanges (a binding key without wildcards routes exactly
    like a direct one, and native delayed delivery needs topic exchanges). No queue
    has ``x-max-priority``: the product publishes no priorities, and quorum queues
    do not support per-message priorities the way classic queues do.
    """
    if broker_is_amqp(broker_url):
        return tuple(
            Queue(
                spec.name,
                Exchange(spec.name, type="topic"),
                routing_key=spec.name,
                queue_arguments=dict(QUORUM),
            )
            for spec in QUEUES
        )
    return tuple(Queue(spec.name, Exchange(spec.name), routing_key=spec.name) for spec in QUEUES)


def broker_settings(broker_url: str | None, *, visibility_timeout: int) -> dict[str, Any]:
    """The Celery settings that depend on the broker (lower-case Celery names).

    ``config.settings`` applies them as ``CELERY_*``; the test suite applies them
    again when ``TEST_BROKER_URL`` names another kind of broker than the settings saw.
    """
    if broker_is_amqp(broker_url):
        return {
            "task_queues": task_queues(broker_url),
            # Missing queues are refused anyway (task_create_missing_queues off);
            # should one be created, it is a quorum queue too.
            "task_default_queue_type": "quorum",
            # Each publish waits for the broker's ack: a message the broker refused
            # raises in the publisher (the delivery stays pending for the relay)
            # instead of vanishing.
            "broker_transport_options": {"confirm_publish": True},
            # Quorum queues do not support global QoS: per-consumer prefetch.
            "worker_detect_quorum_queues": True,
            # Countdown/ETA messages wait in the broker's delay queues (Celery 5.5+),
            # not unacked in a worker whose prefetch they would exhaust.
            "broker_native_delayed_delivery_queue_type": "quorum",
        }
    return {
        "task_queues": task_queues(broker_url),
        "task_default_queue_type": "classic",
        "broker_transport_options": {
            # Retries wait at most TASK_RETRY_BACKOFF_MAX; the visibility timeout must
            # be longer than any countdown plus the hard time limit, or a message
            # waiting for its ETA is handed to a second worker. The outbox relay
            # covers lost messages far sooner than this timeout.
            "visibility_timeout": visibility_timeout,
            "socket_connect_timeout": 2,
            "socket_timeout": 5,
            # Round robin (kombu's default) over a worker's queues: "priority" would
            # drain the first queue before touching the next, starving accounting and
            # default (where the relay runs) behind bookings under load (found by the
            # fault runs).
            "queue_order_strategy": "round_robin",
        },
    }


def task_routes() -> dict[str, dict[str, str]]:
    for queue in ROUTES.values():
        assert queue in QUEUE_NAMES, f"route to undeclared queue {queue!r}"
    return {pattern: {"queue": queue} for pattern, queue in ROUTES.items()}
