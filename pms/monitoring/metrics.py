"""/metrics (Prometheus) and /health/, for operators' tools, behind an address or token check.

/metrics is django-prometheus's exporter (request, database and cache metrics
of this process) plus our gauges, computed at scrape time by a collector:
queue depth, oldest message age and consumers per queue, open failed tasks,
overdue outbox deliveries and channel health. A gauge whose dependency is
down is left out and counted in ``pms_collector_errors{collector=...}``.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django_prometheus.exports import ExportToDjangoView
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from pms.monitoring.alerts import overdue_deliveries
from pms.monitoring.channels import channel_health
from pms.monitoring.overview import open_failed_tasks, queue_overview
from pms.monitoring.signals import beat_last_tick
from pms.monitoring.topology import broker_topology, sentinel_health

logger = logging.getLogger(__name__)


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def request_allowed(request: HttpRequest) -> bool:
    """A valid bearer METRICS_TOKEN, or an address in METRICS_ALLOWED_IPS.

    Loopback addresses count only with METRICS_TRUST_LOOPBACK (on by default only
    when DEBUG is, for the dev stack): behind a reverse proxy on the same host every request
    arrives from loopback, so there it must be off and METRICS_TOKEN set.
    """
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        return hmac.compare_digest(header.removeprefix("Bearer ").strip(), token)
    address = request.META.get("REMOTE_ADDR", "")
    if _is_loopback(address) and not settings.METRICS_TRUST_LOOPBACK:
        return False
    return address in settings.METRICS_ALLOWED_IPS


def restricted(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request_allowed(request):
            return HttpResponseForbidden("forbidden\n", content_type="text/plain")
        return view(request, *args, **kwargs)

    wrapped.__name__ = getattr(view, "__name__", "restricted_view")
    return wrapped


Metrics = list[GaugeMetricFamily]


def _queue_metrics() -> Metrics:
    overview = queue_overview(with_topology=False)  # read once, by _topology_metrics
    depth = GaugeMetricFamily("pms_queue_depth", "Messages waiting in the queue", labels=["queue"])
    age = GaugeMetricFamily(
        "pms_queue_oldest_message_age_seconds",
        "Age of the oldest waiting message (absent when empty or unknown; "
        "on RabbitMQ estimated from the publish log)",
        labels=["queue"],
    )
    consumers = GaugeMetricFamily(
        "pms_queue_consumers", "Workers consuming the queue", labels=["queue"]
    )
    for queue in overview.queues:
        if queue.depth is not None:
            depth.add_metric([queue.name], queue.depth)
        if queue.oldest_age_seconds is not None:
            age.add_metric([queue.name], queue.oldest_age_seconds)
        if queue.consumers is not None:
            consumers.add_metric([queue.name], queue.consumers)
    workers = GaugeMetricFamily("pms_workers_online", "Celery workers that answered")
    if overview.workers is not None:
        workers.add_metric([], len(overview.workers))
    return [depth, age, consumers, workers]


def _beat_metrics() -> Metrics:
    beat = GaugeMetricFamily(
        "pms_beat_last_tick_timestamp_seconds", "When beat last published a periodic task"
    )
    tick = beat_last_tick()
    if tick:
        beat.add_metric([], tick)
    return [beat]


def _failed_task_metrics() -> Metrics:
    return [
        GaugeMetricFamily(
            "pms_failed_tasks_open", "Failed tasks waiting for staff", value=open_failed_tasks()
        )
    ]


def _outbox_metrics() -> Metrics:
    return [
        GaugeMetricFamily(
            "pms_outbox_deliveries_overdue",
            "Pending deliveries past their deadline by more than the alert grace",
            value=overdue_deliveries(),
        )
    ]


def _channel_metrics() -> Metrics:
    channels = channel_health()
    if channels is None:
        return []
    return [
        GaugeMetricFamily(
            "pms_channels", "Channels known to the channel sync", value=len(channels)
        ),
        GaugeMetricFamily(
            "pms_channels_stale",
            "Channels whose feed is stale",
            value=sum(1 for c in channels if c.stale),
        ),
    ]


def _topology_metrics() -> Metrics:
    """RabbitMQ: replicas online per quorum queue and nodes running; Sentinel: quorum."""
    found: Metrics = []
    broker = broker_topology()
    if broker.configured and not broker.error:
        online = GaugeMetricFamily(
            "pms_queue_replicas_online", "Quorum queue members online", labels=["queue"]
        )
        expected = GaugeMetricFamily(
            "pms_queue_replicas_expected",
            "Quorum queue members that should be online",
            labels=["queue"],
        )
        for queue in broker.queues:
            online.add_metric([queue.queue], len(queue.online))
            expected.add_metric([queue.queue], queue.expected)
        nodes = GaugeMetricFamily(
            "pms_broker_nodes_running",
            "RabbitMQ cluster nodes running",
            value=sum(1 for node in broker.nodes if node.running),
        )
        found += [online, expected, nodes]
    sentinel = sentinel_health()
    if sentinel.configured:
        found.append(
            GaugeMetricFamily(
                "pms_redis_sentinel_quorum",
                "1 when the Redis Sentinels can agree on a failover, 0 when they cannot",
                value=0 if sentinel.quorum_lost else 1,
            )
        )
    return found


# collector name (the label of pms_collector_errors) -> what it yields.
GAUGES: dict[str, Callable[[], Metrics]] = {
    "queues": _queue_metrics,
    "beat": _beat_metrics,
    "failed_tasks": _failed_task_metrics,
    "outbox": _outbox_metrics,
    "channels": _channel_metrics,
    "topology": _topology_metrics,
}


class PipelineCollector(Collector):
    """Our gauges, each group computed on its own: a dependency that is down (database,
    Redis, broker) drops only the gauges that need it, and ``pms_collector_errors``
    says which (1 = failed this scrape), instead of failing the whole scrape."""

    def __init__(self, gauges: dict[str, Callable[[], Metrics]] | None = None) -> None:
        self.gauges = GAUGES if gauges is None else gauges

    def collect(self) -> Iterator[GaugeMetricFamily]:
        errors = GaugeMetricFamily(
            "pms_collector_errors",
            "1 when the collector could not compute its gauges at this scrape (they are absent)",
            labels=["collector"],
        )
        for name, compute in self.gauges.items():
            try:
                metrics = compute()
            except Exception as exc:
                logger.warning("metrics collector %s failed: %s", name, exc, exc_info=True)
                if isinstance(exc, DatabaseError):
                    _discard_broken_connection()
                errors.add_metric([name], 1)
                continue
            errors.add_metric([name], 0)
            yield from metrics
        yield errors


def _discard_broken_connection() -> None:
    # Outside a transaction, a failed connection is dropped so the next scrape reconnects.
    if not connection.in_atomic_block:
        connection.close_if_unusable_or_obsolete()


_collector: PipelineCollector | None = None


def register_collector() -> None:
    """Register our collector once per process (at the first scrape)."""
    global _collector
    if _collector is None:
        _collector = PipelineCollector()
        REGISTRY.register(_collector)


def metrics_view(request: HttpRequest) -> HttpResponse:
    register_collector()
    return ExportToDjangoView(request)
