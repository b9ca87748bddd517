"""The outbox publisher: one process sends the deliveries' messages, woken by PostgreSQL.

With ``OUTBOX_PUBLISH = "notify"`` (the default), the transaction that emits an
event does not talk to the broker at all: ``emit_event`` adds a ``NOTIFY`` to it,
which PostgreSQL delivers only if and when it commits. This process ``LISTEN``s,
claims every delivery nobody has published yet (``last_published_at IS NULL``,
``FOR UPDATE SKIP LOCKED``, so several publishers never send the same row), marks
it published and sends the messages in one batch. A booking request then costs
one statement for its publishing instead of a broker round trip per delivery.

Nothing depends on this process for correctness. Killed between its claim and its
send, or down, its deliveries stay ``pending`` and the beat relay
(``pms.pipeline.relay``) sends them once their deadline passes, as it does for a
publish lost after commit; a missed notification is caught by the poll below.
``OUTBOX_PUBLISH = "commit"`` publishes after commit in the committing process
instead (what the test suite's worker tests use), and this process has nothing to do.
"""

from __future__ import annotations

import logging
import threading

import psycopg
from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from pms.choices import DeliveryStatus
from pms.models import EventDelivery
from pms.pipeline.publishing import CHANNEL, publish_deliveries
from pms.pipeline.registry import get_handler

logger = logging.getLogger(__name__)


def _claim_sql() -> str:
    """Lock and mark one batch: the batch is chosen once, then updated.

    Not ``UPDATE ... WHERE id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)``: PostgreSQL
    may plan that as a nested-loop semi-join that re-runs the locking sub-select for every
    row it updates, and each re-run skips the rows the statement has just updated, so it
    claimed every unpublished row whatever the batch size (seen on a small, unanalysed
    table). A MATERIALIZED CTE runs once.
    """
    table = EventDelivery._meta.db_table
    return (
        f'WITH batch AS MATERIALIZED (SELECT "id" FROM "{table}" '
        f'WHERE "status" = %s AND "last_published_at" IS NULL '
        f'ORDER BY "id" LIMIT %s FOR UPDATE SKIP LOCKED) '
        f'UPDATE "{table}" AS d SET "last_published_at" = %s FROM batch WHERE d."id" = batch."id" '
        f'RETURNING d."id", d."event_id", d."tenant_id", d."handler", d."queue"'
    )


def publish_unsent(*, batch_size: int | None = None) -> int:
    """Claim and send one batch of never-published deliveries; returns how many were claimed.

    The claim commits before the send (no lock is held over network I/O). If the
    broker refuses the batch, the claim is undone so the next pass tries again.
    """
    batch_size = batch_size or settings.OUTBOX_RELAY_BATCH
    with connection.cursor() as cursor:
        cursor.execute(_claim_sql(), [DeliveryStatus.PENDING, batch_size, timezone.now()])
        rows = cursor.fetchall()
    if not rows:
        return 0
    claimed = [
        EventDelivery(pk=pk, event_id=event_id, tenant_id=tenant_id, handler=handler, queue=queue)
        for pk, event_id, tenant_id, handler, queue in sorted(rows)
    ]
    # A delivery whose handler this code does not know stays marked: the relay
    # records it for review once it is due (record_delivery_without_handler).
    known = [d for d in claimed if (h := get_handler(d.handler)) is not None and h.task]
    if known and publish_deliveries(known, on_failure_due_now=False) < len(known):
        EventDelivery.objects.filter(pk__in=[d.pk for d in known]).update(last_published_at=None)
        raise BrokerUnavailable(f"{len(known)} deliveries not sent; retrying")
    return len(claimed)


class BrokerUnavailable(Exception):
    """The broker refused a batch (publish_deliveries logged why)."""


def _listen() -> psycopg.Connection[tuple[object, ...]]:
    """A session of its own, on Django's connection parameters, in autocommit: LISTEN
    takes effect at once and the notifications arrive between transactions."""
    listener = psycopg.connect(**connection.get_connection_params(), autocommit=True)
    listener.execute(f"LISTEN {CHANNEL}")
    return listener


def run_publisher(stop: threading.Event, *, poll_seconds: float) -> None:
    """Publish until ``stop`` is set: drain, wait for a notification (or ``poll_seconds``)."""
    listener: psycopg.Connection[tuple[object, ...]] | None = None
    while not stop.is_set():
        try:
            if listener is None:
                listener = _listen()
                logger.info("outbox publisher listening on %s", CHANNEL)
            # Drain first: what was committed while nobody listened is sent too. A
            # short batch was the last one: no second claim to find nothing.
            while publish_unsent() >= settings.OUTBOX_RELAY_BATCH and not stop.is_set():
                pass
            for _ in listener.notifies(timeout=poll_seconds, stop_after=1):
                pass
        except BrokerUnavailable as exc:
            logger.warning("outbox publisher: %s", exc)
            stop.wait(1.0)
        except (psycopg.Error, DatabaseError) as exc:
            logger.warning("outbox publisher: database unavailable (%s); reconnecting", exc)
            if listener is not None:
                listener.close()
                listener = None
            connection.close()
            stop.wait(1.0)
    if listener is not None:
        listener.close()
