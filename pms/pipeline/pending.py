"""Pending rows with a due time: the claim and the sweep every such table shares.

Each piece of follow-up work is first a row that says when it is due (an event
delivery, an outbound message, a channel update, a webhook delivery, a fair work
item). Whoever sends it first *claims* it: in one short transaction the due rows
are locked with ``FOR UPDATE SKIP LOCKED`` (two sweeps, two beats, two hosts never
take the same row, and none waits for another), their due time is moved forward
(so a claimed row whose message is lost is due again later, never lost), and they
are saved. The sender sends *after* the claim commits: no broker or network I/O
while rows are locked.

What differs per table stays with the table: which rows are candidates (status,
an active subscription, the head of a channel's queue), the due column and how
far a claim holds it off, what else a claim changes (a send counter), and what
sending means.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from django.db import models, transaction
from django.utils import timezone

Row = TypeVar("Row", bound=models.Model)
Item = TypeVar("Item")

# Moves a claimed row forward (its due time and whatever else the claim changes).
Hold = Callable[[Row, datetime], None]


def claim(
    candidates: models.QuerySet[Row],
    *,
    hold: Hold[Row],
    fields: Iterable[str],
    batch_size: int,
    due_field: str | None = None,
    order_by: Sequence[Any] = (),
    now: datetime | None = None,
    of: Sequence[str] = ("self",),
    in_claim: Callable[[list[Row]], None] | None = None,
) -> list[Row]:
    """Claim up to ``batch_size`` of ``candidates``: lock, hold, save; return them.

    With ``due_field``, only the candidates whose due time has passed, in ``order_by``
    order and then oldest due first (otherwise the candidates are all due, taken in
    ``order_by`` order; an entry may be an expression).
    ``hold(row, now)`` changes each claimed row (at least when it is due again);
    ``fields`` are the columns it changes, saved in one statement. ``in_claim(rows)``
    runs inside the claim's transaction, after the save, for work that must commit
    with the claim (e.g. recording rows that can never be sent).
    """
    now = now or timezone.now()
    if due_field is not None:
        candidates = candidates.filter(**{f"{due_field}__lte": now})
        order_by = (*order_by, due_field)
    with transaction.atomic():
        rows = list(
            candidates.select_for_update(skip_locked=True, of=tuple(of)).order_by(*order_by)[
                :batch_size
            ]
        )
        for row in rows:
            hold(row, now)
        if rows:
            type(rows[0])._default_manager.bulk_update(rows, list(fields))
        if in_claim is not None and rows:
            in_claim(rows)
    return rows


def claim_one(candidates: models.QuerySet[Row], *, pk: object, **options: Any) -> Row | None:
    """Claim the row ``pk`` if it is among the (due) ``candidates``: the task of one row.

    ``options`` are ``claim``'s (``hold``, ``fields``, ``due_field``, ...).
    """
    rows = claim(candidates.filter(pk=pk), batch_size=1, **options)
    return rows[0] if rows else None


def sweep(
    claim: Callable[[], Sequence[Item]],
    send: Callable[[Sequence[Item]], object],
    *,
    batch_size: int,
) -> int:
    """Claim and send batch after batch until a claim comes back short. Returns how many."""
    total = 0
    while True:
        rows = claim()
        if rows:
            send(rows)
        total += len(rows)
        if len(rows) < batch_size:
            return total
