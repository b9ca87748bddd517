"""Sending a task once the caller's transaction commits, without ever losing the work.

Every piece of follow-up work in the product is first a row (a pending delivery,
message, channel update, webhook delivery, fair work item, failed task). The
message to a worker is only the fast path: if the broker refuses it, the row is
still there and its periodic sweep sends it later. So a broker error is logged
here with what will catch up, and never raised into the request that asked.

Tasks are named, not imported (``app.send_task``): services sit below tasks and
must not import them. Each task name is one constant next to the code that
sends it; the task module registers the task under that constant.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from typing import Any, TypedDict, Unpack

from django.db import transaction

from config.celery import app

logger = logging.getLogger(__name__)


class SendOptions(TypedDict, total=False):
    args: Sequence[Any]
    queue: str | None
    headers: dict[str, Any] | None
    countdown: float | None
    task_id: str | None


def enqueue(task_name: str, *, caught_up_by: str, **options: Unpack[SendOptions]) -> bool:
    """Send ``task_name`` now. A broker error is logged, not raised: returns whether it left.

    ``caught_up_by`` says in the log line what sends the work later (e.g. "the relay").
    """
    args = list(options.get("args", ()))
    try:
        app.send_task(
            task_name,
            args=args,
            queue=options.get("queue"),
            headers=options.get("headers"),
            countdown=options.get("countdown"),
            task_id=options.get("task_id"),
        )
    except Exception as exc:
        logger.warning(
            "could not enqueue %s%s (%s); %s will send it", task_name, args, exc, caught_up_by
        )
        return False
    return True


def enqueue_on_commit(task_name: str, *, caught_up_by: str, **options: Unpack[SendOptions]) -> None:
    """``enqueue`` once the current transaction commits (at once outside a transaction).

    Nothing is sent if the transaction rolls back: the row that promised the work
    is gone with it.
    """
    transaction.on_commit(
        partial(enqueue, task_name, caught_up_by=caught_up_by, **options), robust=True
    )
