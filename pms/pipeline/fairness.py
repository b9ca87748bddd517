"""Fair admission of bulk work between tenants.

Work a tenant can cause in bulk (channel imports and resyncs) is not sent to the
broker directly. It is submitted as a FairWorkItem row; a dispatcher admits at
most ``FAIR_INFLIGHT_PER_TENANT`` in-flight items per tenant and scope, oldest
first, so the queue never holds more than a few items of any one tenant and a
tenant with one item waits behind a handful of others' items, not thousands.

Why PostgreSQL and not Redis: the rows are the promise (a flushed Redis loses
nothing), claims use ``SKIP LOCKED`` (any number of dispatchers on any number of
machines never admit an item twice), and the cap counts what is in flight
everywhere. An item admitted but never finished (a killed worker) is admitted
again after ``FAIR_INFLIGHT_DEADLINE``; the work it runs is idempotent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from pms.models import FairWorkItem
from pms.pipeline.enqueue import enqueue
from pms.pipeline.log_context import NO_TENANT
from pms.pipeline.pending import claim
from pms.pipeline.redis_client import redis_client

logger = logging.getLogger(__name__)

# The dispatcher's task (registered in pms.pipeline.tasks).
FAIR_DISPATCH_TASK = "pms.tasks.fair_dispatch"

KICK_KEY = "pms:fair-dispatch-kick"
ADVISORY_LOCK_ID = 0x7FA1D15  # pg_advisory_xact_lock key of the dispatcher


@dataclass(frozen=True)
class FairWork:
    tenant_id: int
    scope: str
    task_name: str
    args: list[Any]
    queue: str
    dedupe_key: str = ""


def fair_submit(
    *,
    tenant_id: int,
    scope: str,
    task_name: str,
    args: list[Any],
    queue: str,
    dedupe_key: str = "",
) -> FairWorkItem | None:
    """Record bulk work; it is sent when the tenant's share allows. Call inside the caller's
    transaction or not; dispatch is kicked after commit.

    ``dedupe_key``: a second submit with the same key while the first is still
    waiting is dropped (syncing a channel twice in a row does nothing more).
    """
    created = fair_submit_many([FairWork(tenant_id, scope, task_name, args, queue, dedupe_key)])
    return created[0] if created else None


def fair_submit_many(works: list[FairWork]) -> list[FairWorkItem]:
    """``fair_submit`` for a batch: one de-duplication query, one insert, one kick."""
    keys = {(work.scope, work.dedupe_key) for work in works if work.dedupe_key}
    waiting: set[tuple[str, str]] = set()
    if keys:
        waiting = set(
            FairWorkItem.objects.filter(
                scope__in={scope for scope, _ in keys},
                dedupe_key__in={key for _, key in keys},
                dispatched_at__isnull=True,
                finished_at__isnull=True,
            ).values_list("scope", "dedupe_key")
        )
    fresh: list[FairWorkItem] = []
    for work in works:
        if work.dedupe_key and (work.scope, work.dedupe_key) in waiting:
            continue
        if work.dedupe_key:
            waiting.add((work.scope, work.dedupe_key))  # a repeat inside the batch, too
        fresh.append(
            FairWorkItem(
                tenant_id=work.tenant_id,
                scope=work.scope,
                task_name=work.task_name,
                args=work.args,
                queue=work.queue,
                dedupe_key=work.dedupe_key,
            )
        )
    created = FairWorkItem.objects.bulk_create(fresh)
    if created:
        transaction.on_commit(kick_dispatcher)
    return created


def kick_dispatcher() -> None:
    """Ask for a dispatch pass soon; many kicks in a burst queue one pass."""
    try:
        first_kick = redis_client().set(KICK_KEY, 1, nx=True, ex=2)
    except Exception:
        logger.warning("could not kick the fair dispatcher; the periodic pass will run it")
        return
    if first_kick:
        # Housekeeping for all tenants: don't inherit the caller's tenant in logs.
        enqueue(
            FAIR_DISPATCH_TASK,
            headers={"tenant_id": NO_TENANT},
            caught_up_by="the periodic dispatch pass",
        )


def fair_dispatch(*, batch: int = 500) -> int:
    """Admit waiting items up to each tenant's in-flight cap. Returns how many were sent."""
    cap = settings.FAIR_INFLIGHT_PER_TENANT
    stale_before = timezone.now() - timedelta(seconds=settings.FAIR_INFLIGHT_DEADLINE)
    redis_client().delete(KICK_KEY)
    with transaction.atomic():
        # One pass at a time, everywhere: each pass must see the in-flight counts the
        # previous one committed, or two passes together would admit past the cap.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK_ID])
        # Who may take more: per tenant and scope, the cap minus what is in flight.
        # Candidates are ranked per (tenant, scope) by age; a window function cannot
        # be combined with FOR UPDATE, so rank first, then lock what was picked.
        with connection.cursor() as cursor:
            cursor.execute(
                """
                WITH inflight AS (
                    SELECT tenant_id, scope, count(*) AS n FROM pms_fairworkitem
                    WHERE dispatched_at > %s AND finished_at IS NULL
                    GROUP BY tenant_id, scope
                ), ranked AS (
                    SELECT w.id, w.tenant_id, w.scope, row_number() OVER (
                               PARTITION BY w.tenant_id, w.scope ORDER BY w.id
                           ) AS rank
                    FROM pms_fairworkitem w
                    WHERE w.finished_at IS NULL
                      AND (w.dispatched_at IS NULL OR w.dispatched_at <= %s)
                )
                SELECT r.id FROM ranked r
                LEFT JOIN inflight i ON i.tenant_id = r.tenant_id AND i.scope = r.scope
                WHERE r.rank <= %s - coalesce(i.n, 0)
                -- Round robin by share: a tenant with nothing in flight goes first.
                ORDER BY coalesce(i.n, 0) + r.rank, r.id
                LIMIT %s
                """,
                [stale_before, stale_before, cap, batch],
            )
            candidate_ids = [row[0] for row in cursor.fetchall()]
        # Re-checked under the row lock: never admit an item twice.
        items = claim(
            FairWorkItem.objects.filter(pk__in=candidate_ids, finished_at__isnull=True).filter(
                Q(dispatched_at__isnull=True) | Q(dispatched_at__lte=stale_before)
            ),
            order_by=["pk"],
            hold=_admit,
            fields=["dispatched_at", "dispatch_count"],
            batch_size=batch,
        )
        transaction.on_commit(lambda: _send(items))
    return len(items)


def _admit(item: FairWorkItem, now: datetime) -> None:
    # In flight from now; due again (re-admitted) if not finished by the in-flight deadline.
    item.dispatched_at = now
    item.dispatch_count += 1


def _send(items: list[FairWorkItem]) -> None:
    for item in items:
        # Unsent, it stays "dispatched": admitted again after the in-flight deadline.
        enqueue(
            item.task_name,
            args=item.args,
            queue=item.queue,
            headers={"tenant_id": item.tenant_id, "fair_item_id": item.pk},
            caught_up_by="re-admission after the in-flight deadline",
        )


def fair_item_finished(item_id: Any) -> None:
    """The task of an admitted item ended (success or final failure): free its slot."""
    if item_id is None:
        return
    FairWorkItem.objects.filter(pk=item_id, finished_at__isnull=True).update(
        finished_at=timezone.now()
    )
    kick_dispatcher()


def fair_items_purge(*, older_than: timedelta = timedelta(days=2)) -> int:
    deleted, _ = FairWorkItem.objects.filter(finished_at__lt=timezone.now() - older_than).delete()
    return deleted


def free_slot_on_return(sender: Any, status: str, **kwargs: Any) -> None:
    """``task_base.task_returned`` receiver: an admitted item's task ended."""
    item_id = getattr(sender.request, "fair_item_id", None)
    if item_id is not None:
        fair_item_finished(item_id)
