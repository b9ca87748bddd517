"""Running one (event, handler) delivery: the idempotent, exactly-once step.

The delivery row is locked, checked, the handler's effect applied and the row
marked done in one transaction. A duplicate (redelivery, relay re-send,
concurrent worker) waits on the lock, then sees ``done`` and does nothing.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError, transaction
from django.utils import timezone

from config.celery import app
from pms.choices import DeliveryStatus
from pms.models import DomainEvent, EventDelivery
from pms.pipeline.announce import announce_event
from pms.pipeline.deadlines import relay_backoff
from pms.pipeline.failures import failed_tasks_resolve_for_delivery
from pms.pipeline.task_base import ReliableTask

if TYPE_CHECKING:
    from pms.pipeline.registry import Handler

logger = logging.getLogger(__name__)


class EventHandlerTask(ReliableTask):
    abstract = True

    def retry(self, *args: Any, **kwargs: Any) -> Any:
        # While a delivery waits for its retry, keep the relay from re-sending it.
        countdown = kwargs.get("countdown")
        delivery_id = self.request.args[0] if self.request.args else None
        if delivery_id is not None and countdown is not None:
            due_at = timezone.now() + timedelta(seconds=float(countdown)) + relay_backoff(0)
            try:
                EventDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING).update(
                    due_at=due_at
                )
            except DatabaseError:
                # The database may be why we retry; the relay may then send a
                # duplicate early, which the ledger absorbs.
                logger.warning("could not defer relay for delivery %s", delivery_id)
        return super().retry(*args, **kwargs)


def _claim_sql() -> str:
    """Lock the delivery, mark it done and read its event: one statement, not three.

    The sub-select locks the row and keeps its status from before the update
    (PostgreSQL before 18 has no ``RETURNING OLD``); a concurrent copy waits on the
    lock, then sees ``done`` and claims nothing. The handler's effect follows in the
    same transaction: if it raises, the claim is rolled back with it.
    """
    delivery = EventDelivery._meta.db_table
    event = DomainEvent._meta
    columns = ", ".join(f'e."{field.column}"' for field in event.concrete_fields)
    return (
        f'UPDATE "{delivery}" AS d SET "status" = %s, "completed_at" = %s '
        f'FROM (SELECT "id", "status" FROM "{delivery}" WHERE "id" = %s FOR UPDATE) AS before, '
        f'"{event.db_table}" AS e '
        f'WHERE d."id" = before."id" AND e."id" = d."event_id" AND before."status" <> %s '
        f'RETURNING {columns}, before."status" AS "delivery_status_before"'
    )


def run_delivery(handler: Handler, delivery_id: int) -> str:
    """Apply ``handler`` to the delivery's event once. Returns what happened.

    Statements: the claim (``_claim_sql``), the handler's own, and the commit.
    ``completed_at`` is when the worker applied it (its transaction's start).
    """
    with transaction.atomic():
        claimed = list(
            DomainEvent.objects.raw(
                _claim_sql(),
                [DeliveryStatus.DONE, timezone.now(), delivery_id, DeliveryStatus.DONE],
            )
        )
        if not claimed:
            exists = EventDelivery.objects.filter(pk=delivery_id).exists()
            return "duplicate" if exists else "gone"
        (event,) = claimed
        handler.func(event)
        # What the handler changed shows on the open pages once it commits.
        announce_event(
            tenant_id=event.tenant_id,
            aggregate_type=event.aggregate_type,
            aggregate_id=event.aggregate_id,
            payload=event.payload,
        )
        if getattr(event, "delivery_status_before", None) == DeliveryStatus.FAILED:
            # A late copy of a delivery staff had not acted on yet succeeded.
            failed_tasks_resolve_for_delivery(delivery=EventDelivery.objects.get(pk=delivery_id))
    return "applied"


def make_handler_task(handler: Handler) -> Any:
    def deliver(self: EventHandlerTask, delivery_id: int) -> str:
        return run_delivery(handler, delivery_id)

    # Cosmetic, so mutation testing skips them: the class name and docstring Celery gives
    # the task; its name, queue and base are passed explicitly below.
    # pragma: no mutate start
    deliver.__name__ = handler.name.replace(".", "_")
    deliver.__doc__ = f"Deliver events to handler {handler.name} (queue {handler.queue})."
    # pragma: no mutate end
    return app.task(name=handler.task_name, base=EventHandlerTask, bind=True, queue=handler.queue)(
        deliver
    )
