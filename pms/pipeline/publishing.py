"""The outbox: emit an event inside a service's transaction; its messages follow commit.

Invariant: a DomainEvent and one EventDelivery per subscribed handler are
inserted in the caller's transaction. Publishing is only ever an optimisation
on top of that: if it fails (broker down, process killed right after commit),
the delivery stays ``pending`` and the relay sends it once ``due_at`` passes.

Who publishes (``OUTBOX_PUBLISH``): ``"notify"``, the outbox publisher process
(pms.pipeline.publisher), woken by a ``NOTIFY`` that PostgreSQL delivers when the
transaction commits, so the committing request never waits for the broker; or
``"commit"``, the committing process itself, in an on-commit hook.
"""

from __future__ import annotations

import contextvars
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from config.celery import app
from pms.choices import DeliveryStatus
from pms.models import DomainEvent, EventDelivery
from pms.pipeline.announce import announce_event
from pms.pipeline.registry import get_handler, handlers_for

logger = logging.getLogger(__name__)

# Delivery task ids are derived from (event, handler): a re-publish carries the
# same id, so Flower, logs and the ledger all recognise it as the same delivery.
_TASK_ID_NAMESPACE = uuid.UUID("7a4f3c1e-9b2d-4e61-8f0a-5c3d2b1a0e9f")


def delivery_task_id(event_id: uuid.UUID | str, handler: str) -> str:
    return str(uuid.uuid5(_TASK_ID_NAMESPACE, f"{event_id}:{handler}"))


# The one row of an event no handler subscribes to (nothing is inserted for it).
_NO_HANDLER_ROW = "(NULL::int, NULL, NULL)"


def _insert_event(event: DomainEvent, handlers: list[tuple[str, str]], due_at: Any) -> list[int]:
    """The event, its sequence and one delivery per (handler, queue): one statement.

    The sequence upsert takes a row lock held until the caller's transaction ends, so
    sequences per aggregate are strictly increasing in commit order; the event takes
    the sequence it returned and the deliveries the event's id. Returns the deliveries'
    ids, in ``handlers`` order. (Django's ORM would send three statements.)
    """
    rows = ", ".join(["(%s::int, %s, %s)"] * len(handlers)) or _NO_HANDLER_ROW
    sql = f"""
        WITH seq AS (
            INSERT INTO pms_aggregatesequence (aggregate_type, aggregate_id, last_sequence)
            VALUES (%s, %s, 1)
            ON CONFLICT (aggregate_type, aggregate_id)
            DO UPDATE SET last_sequence = pms_aggregatesequence.last_sequence + 1
            RETURNING last_sequence
        ), ev AS (
            INSERT INTO pms_domainevent (id, tenant_id, aggregate_type, aggregate_id, sequence,
                                         event_type, payload, actor, created_at)
            SELECT %s, %s, %s, %s, seq.last_sequence, %s, %s::jsonb, %s, %s FROM seq
            RETURNING id, sequence
        ), wanted (position, handler, queue) AS (VALUES {rows}), dl AS (
            INSERT INTO pms_eventdelivery (event_id, tenant_id, handler, queue, status,
                                           publish_count, due_at, created_at)
            SELECT ev.id, %s, wanted.handler, wanted.queue, %s, 0, %s, %s
            FROM ev, wanted WHERE wanted.handler IS NOT NULL ORDER BY wanted.position
            RETURNING id, handler
        )
        SELECT ev.sequence, dl.id, dl.handler FROM ev LEFT JOIN dl ON true
    """
    params: list[Any] = [
        event.aggregate_type,
        event.aggregate_id,
        event.id,
        event.tenant_id,
        event.aggregate_type,
        event.aggregate_id,
        event.event_type,
        json.dumps(event.payload, cls=DjangoJSONEncoder),
        event.actor,
        event.created_at,
    ]
    for position, (handler, queue) in enumerate(handlers):
        params += [position, handler, queue]
    params += [event.tenant_id, DeliveryStatus.PENDING, due_at, event.created_at]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        returned = cursor.fetchall()
    event.sequence = int(returned[0][0])
    event._state.adding = False
    event._state.db = connection.alias
    ids = {handler: delivery_id for _, delivery_id, handler in returned if handler}
    return [ids[handler] for handler, _ in handlers]


# The LISTEN/NOTIFY channel of the outbox publisher; OUTBOX_PUBLISH's values.
CHANNEL = "pms_outbox"
NOTIFY_MODE = "notify"
COMMIT_MODE = "commit"
PUBLISH_MODES = (NOTIFY_MODE, COMMIT_MODE)
_NOTIFY_SQL = "SELECT pg_notify(%s, '')"


def notify_publisher() -> None:
    """In the emitting transaction: wake the publisher when (and only if) it commits.

    PostgreSQL folds identical notifications of one transaction into one.
    """
    with connection.cursor() as cursor:
        cursor.execute(_NOTIFY_SQL, [CHANNEL])


# Where the deliveries of events caused in bulk go (config.queues: the sync worker group).
BULK_QUEUE = "bulk"
_bulk = contextvars.ContextVar("pms_bulk_events", default=False)


@contextmanager
def bulk_events() -> Iterator[None]:
    """Events emitted inside are bulk work (a channel import, one of thousands): their
    deliveries go to ``BULK_QUEUE`` instead of their handlers' queues, so a tenant's flood
    of imported blocks never queues in front of another tenant's bookings, messages or
    channel updates. Handlers stay idempotent and ordered by sequence, whatever the queue.
    """
    token = _bulk.set(True)
    try:
        yield
    finally:
        _bulk.reset(token)


def emit_event(
    *,
    tenant_id: int,
    aggregate_type: str,
    aggregate_id: Any,
    event_type: str,
    payload: dict[str, Any],
    actor: str = "",
) -> DomainEvent:
    """Record an event and its deliveries; they are published once the transaction commits.

    Must be called inside the service's ``transaction.atomic()`` block.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("emit_event must run inside the service's transaction")
    now = timezone.now()
    event = DomainEvent(
        id=uuid.uuid4(),
        tenant_id=tenant_id,
        aggregate_type=aggregate_type,
        aggregate_id=str(aggregate_id),
        event_type=event_type,
        payload=payload,
        actor=actor[:150],
        created_at=now,
    )
    bulk = _bulk.get()
    handlers = [
        (handler.name, BULK_QUEUE if bulk else handler.queue)
        for handler in handlers_for(event_type)
    ]
    due_at = now + settings.OUTBOX_DELIVERY_DEADLINE
    delivery_ids = _insert_event(event, handlers, due_at)
    if handlers:
        deliveries = [
            # What publishing reads: the row itself was inserted above.
            EventDelivery(
                pk=delivery_id, event=event, tenant_id=tenant_id, handler=name, queue=queue
            )
            for delivery_id, (name, queue) in zip(delivery_ids, handlers, strict=True)
        ]
        if settings.OUTBOX_PUBLISH == NOTIFY_MODE:
            notify_publisher()
        else:
            transaction.on_commit(lambda: publish_deliveries(deliveries))
    announce_event(
        tenant_id=tenant_id,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        payload=payload,
    )
    return event


_NEVER = float("-inf")  # an open-until time that has always passed
BREAKER_COOLDOWN_SECONDS = 5.0


class _BrokerBreaker:
    """After a failed publish, skip publishing for a few seconds.

    While the broker is down every request would otherwise wait for the
    connection timeout; the relay delivers the skipped work once it is back.
    """

    def __init__(self, cooldown: float = BREAKER_COOLDOWN_SECONDS) -> None:
        self.cooldown = cooldown
        self._open_until = _NEVER
        self._lock = threading.Lock()

    def is_open(self) -> bool:
        return time.monotonic() < self._open_until

    def trip(self) -> None:
        with self._lock:
            self._open_until = time.monotonic() + self.cooldown

    def reset(self) -> None:
        self._open_until = _NEVER


broker_breaker = _BrokerBreaker()


def publish_deliveries(
    deliveries: Iterable[EventDelivery], *, on_failure_due_now: bool = True
) -> int:
    """Send one message per delivery, in order. Never raises; returns how many were sent.

    The messages (and their ``task-sent`` events) go out as one batch: on Redis
    one pipelined round trip instead of two round trips per message, which was
    40 % of a booking request (bench/RESULTS.md). A failed batch counts as not
    sent at all, although part of it may have arrived: the relay sends it again
    and the ledger absorbs the duplicates.

    What is not sent is left to the relay; after commit it is brought forward so
    the relay's next pass sends it (``on_failure_due_now``; the relay itself
    handles its failures differently, see relay_due_deliveries).
    """
    deliveries = list(deliveries)
    if not deliveries:
        return 0
    if broker_breaker.is_open():
        if on_failure_due_now:
            _mark_due_now(deliveries)
        return 0
    sent = 0
    try:
        with app.producer_or_acquire() as producer, producer.batch():
            for delivery in deliveries:
                handler = get_handler(delivery.handler)
                if handler is None or handler.task is None:
                    logger.error("no handler %s for delivery %s", delivery.handler, delivery.pk)
                    continue
                headers: dict[str, Any] = {
                    "tenant_id": delivery.tenant_id,
                    "event_id": str(delivery.event_id),
                }
                handler.task.apply_async(
                    args=(delivery.pk,),
                    task_id=delivery_task_id(delivery.event_id, delivery.handler),
                    queue=delivery.queue,
                    headers=headers,
                    producer=producer,
                )
                sent += 1
    except Exception as exc:
        broker_breaker.trip()
        first = deliveries[0]
        logger.warning(
            "publish failed, relay will deliver: tenant=%s event=%s deliveries=%d error=%s",
            first.tenant_id,
            first.event_id,
            len(deliveries),
            exc,
        )
        if on_failure_due_now:
            _mark_due_now(deliveries)
        return 0
    return sent


def _mark_due_now(deliveries: list[EventDelivery]) -> None:
    # Not required for correctness (the deadline already makes them due), but
    # brings unsent work forward so the relay sends it on its next pass.
    ids = [d.pk for d in deliveries]
    try:
        EventDelivery.objects.filter(pk__in=ids, status=DeliveryStatus.PENDING).update(
            due_at=timezone.now()
        )
    except Exception:
        logger.exception("could not bring %d unsent deliveries forward", len(ids))
