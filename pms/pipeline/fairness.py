"""Fair admission of bulk work between tenants, and of work to slow endpoints.

Work a tenant can cause in bulk (channel imports and resyncs, channel pushes, webhook
deliveries, batch messages, recurring maintenance) is not sent to the broker directly.
It is submitted as a FairWorkItem row; a dispatcher admits, oldest first:

- per tenant and *scope* (the kind of work), at most ``FAIR_INFLIGHT_PER_TENANT`` in
  flight (``FAIR_INFLIGHT_PER_SCOPE`` sets it per scope), a tenant with nothing in
  flight first, so the queues never hold more than a few items of any one tenant and
  a tenant with one item waits behind a handful of others' items, not thousands;
- per *lane* (one remote endpoint of one tenant, pms.pipeline.endpoints), at most
  ``FAIR_INFLIGHT_PER_ENDPOINT`` in flight, none while its circuit is open and one
  while it is half open. Lanes are capped before scopes: a tenant's items for a
  hanging receiver wait in their lane and do not use up the tenant's share of the
  scope, so its work to other endpoints still goes.

Why PostgreSQL and not Redis: the rows are the promise (a flushed Redis loses
nothing; a row written in the caller's transaction cannot be lost between commit and
publish), claims use ``SKIP LOCKED`` (any number of dispatchers on any number of
machines never admit an item twice), and the caps count what is in flight
everywhere. An item admitted but never finished (a killed worker) is admitted again
after ``FAIR_INFLIGHT_DEADLINE``; the work it runs is idempotent.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import CharField, Exists, OuterRef, Q, Value
from django.db.models.functions import Concat
from django.utils import timezone

from pms.models import FairWorkItem
from pms.pipeline.enqueue import enqueue
from pms.pipeline.log_context import NO_TENANT
from pms.pipeline.pending import claim
from pms.pipeline.redis_client import redis_client

logger = logging.getLogger(__name__)

Row = TypeVar("Row", bound=models.Model)

# The dispatcher's task (registered in pms.pipeline.tasks).
FAIR_DISPATCH_TASK = "pms.tasks.fair_dispatch"

KICK_KEY = "pms:fair-dispatch-kick"
TENANT_PASS_KEY = "pms:fair-tenant-pass:"
TENANT_KICK_KEY = "pms:fair-tenant-kick:"
TENANT_PASS_MS = 500
TENANT_PASS_SECONDS = TENANT_PASS_MS / 1000
KICK_SECONDS = 2  # kicks within this share one queued pass
# What the Redis markers hold: only whether they exist counts.
_MARK = 1
ADVISORY_LOCK_ID = 0x7FA1D15  # pg_advisory_xact_lock key of the dispatcher


@dataclass(frozen=True)
class FairWork:
    tenant_id: int
    scope: str
    task_name: str
    args: list[Any]
    queue: str
    dedupe_key: str = ""
    lane: str = ""
    task_id: str = ""


def fair_submit(
    *,
    tenant_id: int,
    scope: str,
    task_name: str,
    args: list[Any],
    queue: str,
    dedupe_key: str = "",
    lane: str = "",
    task_id: str = "",
) -> FairWorkItem | None:
    """Record bulk work; it is sent when the tenant's share allows. Call inside the caller's
    transaction (the item commits with the work it stands for) or not; dispatch is
    kicked after commit.

    ``dedupe_key``: a second submit with the same key while the first is still
    waiting is dropped (syncing a channel twice in a row does nothing more).
    ``lane``: the remote endpoint the work talks to (``endpoints.endpoint_lane``).
    ``task_id``: a fixed Celery task id (repeated failures then reopen one FailedTask).
    """
    created = fair_submit_many(
        [FairWork(tenant_id, scope, task_name, args, queue, dedupe_key, lane, task_id)]
    )
    return created[0] if created else None


def fair_submit_many(works: list[FairWork], *, new: bool = False) -> list[FairWorkItem]:
    """``fair_submit`` for a batch: one de-duplication query, one insert, one kick.

    ``new``: the work was just created (a row inserted in this transaction), so nothing
    can wait under its keys yet: the de-duplication query is skipped.
    """
    keys = {(work.scope, work.dedupe_key) for work in works if work.dedupe_key and not new}
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
                lane=work.lane,
                task_id=work.task_id,
            )
        )
    created = FairWorkItem.objects.bulk_create(fresh)
    if created:
        tenant_ids = sorted({item.tenant_id for item in created})
        transaction.on_commit(partial(_admit_submitted, tenant_ids))
    return created


def _admit_submitted(tenant_ids: list[int]) -> None:
    """After commit: admit the submitting tenants' work at once, here.

    A tenant with room in its share (B asking for one sync) gets its item sent without
    waiting for a dispatch task behind other work. At most one such pass per tenant per
    ``TENANT_PASS_MS`` (a Redis marker): a tenant submitting thousands one by one (A's
    flood) costs one pass here per interval and one queued pass of its own after it,
    never a pass per item, and never a pass over every tenant's items.
    """
    for tenant_id in tenant_ids:
        try:
            client = redis_client()
            if client.set(f"{TENANT_PASS_KEY}{tenant_id}", _MARK, nx=True, px=TENANT_PASS_MS):
                fair_dispatch(tenant_id=tenant_id)
            elif client.set(f"{TENANT_KICK_KEY}{tenant_id}", _MARK, nx=True, px=TENANT_PASS_MS):
                # Submitted during the interval: one pass for this tenant once it ends.
                enqueue(
                    FAIR_DISPATCH_TASK,
                    args=[tenant_id],
                    countdown=TENANT_PASS_SECONDS,  # the interval left, at most
                    headers={"tenant_id": tenant_id},
                    caught_up_by="the periodic dispatch pass",
                )
        except Exception:
            logger.warning("could not admit tenant %s's new work here", tenant_id, exc_info=True)
            kick_dispatcher()


def kick_dispatcher() -> None:
    """Ask for a dispatch pass soon; many kicks in a burst queue one pass."""
    try:
        first_kick = redis_client().set(KICK_KEY, _MARK, nx=True, ex=KICK_SECONDS)
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


# Which waiting items may go now, ranked for round robin. Lanes first: an item is a
# candidate only if its lane (if any) has room (cap minus in flight; 0 while the
# circuit is open, 1 while half open); then per tenant and scope, the scope's cap
# minus what is in flight. Ranked by share: a tenant with nothing in flight goes first.
# A window function cannot be combined with FOR UPDATE: rank here, lock what was picked.
_CANDIDATES_SQL = """
WITH open_items AS (
    SELECT id, tenant_id, scope, lane,
           (dispatched_at IS NOT NULL AND dispatched_at > %(stale)s) AS in_flight
    FROM pms_fairworkitem WHERE finished_at IS NULL {only_tenant}
), inflight AS (
    SELECT tenant_id, scope, count(*) AS n FROM open_items WHERE in_flight
    GROUP BY tenant_id, scope
), lane_inflight AS (
    SELECT tenant_id, lane, count(*) AS n FROM open_items WHERE in_flight AND lane <> ''
    GROUP BY tenant_id, lane
), circuits AS (
    SELECT tenant_id, lane, CASE WHEN open_until > now() THEN 0 ELSE 1 END AS cap
    FROM pms_endpointcircuit WHERE consecutive_failures >= %(breaker_failures)s
), waiting AS (
    SELECT w.id, w.tenant_id, w.scope, w.lane,
           CASE WHEN w.lane = '' THEN 0 ELSE row_number() OVER (
               PARTITION BY w.tenant_id, w.lane ORDER BY w.id
           ) END AS lane_rank
    FROM open_items w WHERE NOT w.in_flight
), lane_ok AS (
    SELECT w.id, w.tenant_id, w.scope FROM waiting w
    LEFT JOIN lane_inflight li ON li.tenant_id = w.tenant_id AND li.lane = w.lane
    LEFT JOIN circuits c ON c.tenant_id = w.tenant_id AND c.lane = w.lane
    WHERE w.lane = ''
       OR w.lane_rank <= least(coalesce(c.cap, %(lane_cap)s), %(lane_cap)s) - coalesce(li.n, 0)
), ranked AS (
    SELECT id, tenant_id, scope,
           row_number() OVER (PARTITION BY tenant_id, scope ORDER BY id) AS rank
    FROM lane_ok
)
SELECT r.id FROM ranked r
LEFT JOIN inflight i ON i.tenant_id = r.tenant_id AND i.scope = r.scope
WHERE r.rank <= coalesce((%(scope_caps)s::jsonb ->> r.scope)::int, %(cap)s) - coalesce(i.n, 0)
ORDER BY coalesce(i.n, 0) + r.rank, r.id
LIMIT %(batch)s
"""


def scope_cap(scope: str) -> int:
    """In-flight cap per tenant for one kind of work."""
    return int(settings.FAIR_INFLIGHT_PER_SCOPE.get(scope, settings.FAIR_INFLIGHT_PER_TENANT))


DISPATCH_BATCH = 500  # items admitted per pass at most
_ONLY_TENANT_SQL = "AND tenant_id = %(tenant)s"
_DISPATCH_LOCK_SQL = "SELECT pg_advisory_xact_lock(%s)"


def fair_dispatch(*, batch: int = DISPATCH_BATCH, tenant_id: int | None = None) -> int:
    """Admit waiting items up to every cap. Returns how many were sent.

    ``tenant_id``: a pass over that tenant's items only (its finished item freed a slot
    of its own share or lane: no other tenant's admission can have changed). Cheap: the
    open-items index is per tenant.
    """
    stale_before = timezone.now() - timedelta(seconds=settings.FAIR_INFLIGHT_DEADLINE)
    if tenant_id is None:
        redis_client().delete(KICK_KEY)
    sql = _CANDIDATES_SQL.format(only_tenant=_ONLY_TENANT_SQL if tenant_id is not None else "")
    with transaction.atomic():
        # One pass at a time, everywhere: each pass must see the in-flight counts the
        # previous one committed, or two passes together would admit past the cap.
        with connection.cursor() as cursor:
            cursor.execute(_DISPATCH_LOCK_SQL, [ADVISORY_LOCK_ID])
            cursor.execute(
                sql,
                {
                    "stale": stale_before,
                    "breaker_failures": settings.ENDPOINT_BREAKER_FAILURES,
                    "lane_cap": settings.FAIR_INFLIGHT_PER_ENDPOINT,
                    "scope_caps": json.dumps(dict(settings.FAIR_INFLIGHT_PER_SCOPE)),
                    "cap": settings.FAIR_INFLIGHT_PER_TENANT,
                    "batch": batch,
                    "tenant": tenant_id,
                },
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
            task_id=item.task_id or None,
            caught_up_by="re-admission after the in-flight deadline",
        )


def fair_item_finished(item_id: Any) -> None:
    """The task of an admitted item ended (success or final failure): free its slot and
    admit its tenant's next items at once, in the worker that ran it.

    Only this tenant's share and lanes changed, so only its items are looked at: a busy
    tenant keeps its share busy without a dispatch pass per item, and the passes that
    admit other tenants' work (on submit, periodic) stay few. If that pass fails, a
    kick leaves it to the dispatcher.
    """
    if item_id is None:
        return
    now = timezone.now()
    tenants = list(
        FairWorkItem.objects.filter(pk=item_id, finished_at__isnull=True).values_list(
            "tenant_id", flat=True
        )
    )
    FairWorkItem.objects.filter(pk=item_id, finished_at__isnull=True).update(finished_at=now)
    if not tenants:
        return
    try:
        fair_dispatch(tenant_id=tenants[0])
    except Exception:
        logger.warning("could not admit tenant %s's next work here", tenants[0], exc_info=True)
        kick_dispatcher()


def without_open_work(
    rows: models.QuerySet[Row], *, scope: str, key_prefix: str
) -> models.QuerySet[Row]:
    """``rows`` whose work (submitted with dedupe key ``key_prefix`` + pk) is not open.

    Sweeps ask this before submitting a row's work again: a row whose item waits
    behind its tenant's share (or an open circuit) is not lost, only not yet sent,
    and leaving it out keeps one tenant's held rows from filling the sweep's batch.
    """
    open_work = FairWorkItem.objects.filter(
        scope=scope,
        finished_at__isnull=True,
        # PostgreSQL's concatenation casts the pk to text itself.
        dedupe_key=Concat(Value(key_prefix), OuterRef("pk"), output_field=CharField()),
    )
    return rows.filter(~Exists(open_work))


def fair_items_purge(*, older_than: timedelta = timedelta(days=2)) -> int:
    deleted, _ = FairWorkItem.objects.filter(finished_at__lt=timezone.now() - older_than).delete()
    return deleted


def free_slot_on_return(sender: Any, status: str, **kwargs: Any) -> None:
    """``task_base.task_returned`` receiver: an admitted item's task ended."""
    item_id = getattr(sender.request, "fair_item_id", None)
    if item_id is not None:
        fair_item_finished(item_id)
