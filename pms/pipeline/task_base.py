"""The base class for every task that must not be lost.

Retries are declared here, once: transient errors retry with exponential
backoff and full jitter up to ``TASK_MAX_RETRIES``; permanent errors do not.
Whatever finally fails reaches ``pms.pipeline.failures`` through Celery's
``task_failure`` signal (connected in PmsConfig.ready). A retry whose publish
fails does not: Celery raises ``Reject`` there (the message is dropped, no
``task_failure``), so ``ReliableTask.retry`` sends ``retry_lost`` instead, which
the failures layer turns into a FailedTask.

Layers above subscribe to this base instead of being imported by it: the
``retry_lost`` and ``task_returned`` signals (connected in PmsConfig.ready).

``acks_late`` + ``reject_on_worker_lost`` mean a worker killed mid-task gives
the message back. A message that kills its worker every time would loop for
ever, so starts that never finished are counted in Redis per (task id, retry
number). Only a *redelivered* message can follow a start that never finished
(the broker gives back what was not acknowledged, flagged ``redelivered``), so
only those are counted: ``before_start`` adds one, ``after_return`` (which runs
on success and on failure, but never when the process died) takes it back.
A first delivery costs no Redis round trip; duplicates that finish never count;
after ``TASK_POISON_MAX_STARTS`` lost starts the message fails permanently
instead of running again.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import redis
from celery import Task
from celery.exceptions import Reject
from django.conf import settings
from django.dispatch import Signal

from pms.pipeline.errors import TRANSIENT_ERRORS, PermanentError, PoisonMessageError
from pms.pipeline.redis_client import redis_client

logger = logging.getLogger(__name__)

POISON_KEY_TTL = 24 * 3600

# Sent when a retry could not be published and Celery dropped the message
# (sender: the task; task_id, exception, args, kwargs): record it, or it is lost.
retry_lost = Signal()
# Sent when a task run ends in SUCCESS or FAILURE (sender: the task; task_id, status).
# Not sent for a retry (the task runs again) nor when the worker died mid-run.
task_returned = Signal()


def poison_key(task_id: str, retries: int) -> str:
    return f"pms:task-starts:{task_id}:{retries}"


def forget_starts(task_id: str) -> None:
    """Reset the poison counter (a staff retry deserves fresh attempts)."""
    try:
        client = redis_client()
        keys = list(client.scan_iter(match=f"pms:task-starts:{task_id}:*", count=100))
        if keys:
            client.delete(*keys)
    except redis.RedisError:
        logger.warning("could not reset start counter of %s", task_id)


class RetryPublishError(Exception):
    """A task's retry could not be sent to the broker (recorded as its FailedTask)."""


class ReliableTask(Task):  # type: ignore[type-arg]
    abstract = True
    autoretry_for = TRANSIENT_ERRORS
    dont_autoretry_for = (PermanentError,)
    retry_backoff = settings.TASK_RETRY_BACKOFF
    retry_backoff_max = settings.TASK_RETRY_BACKOFF_MAX
    retry_jitter = True
    max_retries = settings.TASK_MAX_RETRIES
    acks_late = True
    reject_on_worker_lost = True
    ignore_result = True

    def retry(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().retry(*args, **kwargs)
        except Reject as rejected:
            reason = getattr(rejected, "reason", None)
            # Celery's Task.retry turns a failed publish of the retry message into
            # Reject(requeue=False): the message is acknowledged and dropped, and
            # task_failure never fires. Without this the task would vanish unseen.
            if isinstance(reason, BaseException):
                original = kwargs.get("exc")
                error = RetryPublishError(
                    f"could not publish the retry ({reason!r}) after: {original!r}"
                )
                error.__cause__ = reason
                retry_lost.send(
                    sender=self,
                    task_id=self.request.id,
                    exception=error,
                    args=self.request.args,
                    kwargs=self.request.kwargs,
                )
            raise

    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        if not (self.request.delivery_info or {}).get("redelivered"):
            return
        retries = self.request.retries or 0
        try:
            client = redis_client()
            key = poison_key(task_id, retries)
            with client.pipeline() as pipe:
                pipe.incr(key)
                pipe.expire(key, POISON_KEY_TTL)
                lost_starts = int(pipe.execute()[0])
        except redis.RedisError:
            return  # the guard is best effort; never block work on it
        self.request.pms_start_counted = True  # type: ignore[attr-defined]  # a per-run flag
        if lost_starts >= settings.TASK_POISON_MAX_STARTS:
            raise PoisonMessageError(
                f"started {lost_starts} times without finishing (worker lost each time); "
                "not run again"
            )

    def after_return(
        self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        if getattr(self.request, "pms_start_counted", False):
            with contextlib.suppress(redis.RedisError):
                redis_client().decr(poison_key(task_id, self.request.retries or 0))
        if status in ("SUCCESS", "FAILURE"):
            task_returned.send(sender=self, task_id=task_id, status=status)

    def tenant_id(self) -> int | None:
        value = getattr(self.request, "tenant_id", None)
        return int(value) if value is not None else None
