"""FailedTask: recording what gave up, and the staff actions on it.

``record_task_failure`` is connected to Celery's ``task_failure`` signal, the
one path every final failure takes (exhausted retries, permanent errors, a
poison message), and to ``task_base.retry_lost`` (a retry whose publish
failed). It upserts by task id, so the same task failing again after a staff
retry reopens its row instead of creating a second one.
"""

from __future__ import annotations

import logging
import traceback as traceback_module
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from config.celery import app
from config.queues import queue_for_routing_key
from pms.choices import DeliveryStatus, FailedTaskStatus
from pms.models import EventDelivery, FailedTask, FailedTaskAction
from pms.pipeline.announce import FAILED_TASK, announce
from pms.pipeline.deadlines import relay_backoff
from pms.pipeline.enqueue import enqueue_on_commit
from pms.pipeline.task_base import forget_starts

logger = logging.getLogger(__name__)

# The digest of new failures to staff (registered in pms.pipeline.tasks).
STAFF_ALERT_TASK = "pms.tasks.alert_staff_of_failures"


def _delivery_for(task: Any, args: Any) -> EventDelivery | None:
    if not str(getattr(task, "name", "")).startswith("handlers.") or not args:
        return None
    try:
        return EventDelivery.objects.filter(pk=int(args[0])).first()
    except (TypeError, ValueError):
        return None


def record_task_failure(
    sender: Any = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    args: Any = None,
    kwargs: Any = None,
    einfo: Any = None,
    **extra: Any,
) -> FailedTask | None:
    """task_failure receiver: write (or reopen) the FailedTask row. Never raises."""
    if sender is None or task_id is None:
        return None
    try:
        return _record(sender, task_id, exception, list(args or []), dict(kwargs or {}), einfo)
    except Exception:
        # The database itself may be down. The delivery row stays pending, so
        # the relay re-sends it later; nothing is lost, only delayed.
        logger.exception(
            "could not record failure of %s[%s]", getattr(sender, "name", "?"), task_id
        )
        return None


def _record(
    task: Any,
    task_id: str,
    exception: BaseException | None,
    args: list[Any],
    kwargs: dict[str, Any],
    einfo: Any,
) -> FailedTask:
    request = getattr(task, "request", None)
    delivery_info = getattr(request, "delivery_info", None) or {}
    # A retry that waited out its countdown in RabbitMQ carries the delay bits in its
    # routing key: the queue is the name at its end.
    queue = (
        queue_for_routing_key(delivery_info.get("routing_key"))
        or getattr(task, "queue", None)
        or ""
    )
    retries = int(getattr(request, "retries", 0) or 0)
    tenant_id = getattr(request, "tenant_id", None)
    traceback_text = str(getattr(einfo, "traceback", "") or "")
    if not traceback_text and exception is not None:
        traceback_text = "".join(traceback_module.format_exception(exception))
    now = timezone.now()
    with transaction.atomic():
        delivery = _delivery_for(task, args)
        if delivery is not None:
            tenant_id = delivery.tenant_id
            queue = queue or delivery.queue
            if delivery.status == DeliveryStatus.DONE:
                # Applied after all (a late duplicate failed): nothing to review.
                logger.info(
                    "failure of %s[%s] ignored: delivery already applied", task.name, task_id
                )
                return FailedTask(task_id=task_id)
            EventDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.FAILED)
        failed, created = FailedTask.objects.select_for_update().get_or_create(
            task_id=task_id,
            defaults={
                "task_name": task.name,
                "queue": queue,
                "args": args,
                "kwargs": kwargs,
                "tenant_id": tenant_id,
                "event_id": delivery.event_id if delivery else None,
                "delivery": delivery,
                "exception_class": _qualified_name(exception),
                "exception_message": str(exception)[:10_000],
                "traceback": traceback_text[:50_000],
                "attempts": retries + 1,
                "first_failed_at": now,
                "last_failed_at": now,
            },
        )
        if not created:
            failed.exception_class = _qualified_name(exception)
            failed.exception_message = str(exception)[:10_000]
            failed.traceback = traceback_text[:50_000]
            failed.attempts = F("attempts") + retries + 1
            failed.failure_count = F("failure_count") + 1
            failed.last_failed_at = now
            failed.status = FailedTaskStatus.OPEN
            failed.alerted_at = None
            failed.save(
                update_fields=[
                    "exception_class",
                    "exception_message",
                    "traceback",
                    "attempts",
                    "failure_count",
                    "last_failed_at",
                    "status",
                    "alerted_at",
                ]
            )
        _act(
            failed_task=failed,
            action="failed",
            note=f"{_qualified_name(exception)}: {exception}"[:2000],
        )
        _schedule_staff_alert()
    logger.warning(
        "task gave up, recorded for review: task=%s id=%s tenant=%s error=%s",
        task.name,
        task_id,
        tenant_id,
        _qualified_name(exception),
    )
    return failed


def record_delivery_without_handler(*, delivery: EventDelivery, task_id: str) -> FailedTask:
    """A pending delivery whose handler no longer exists: fail it for review.

    A handler renamed or removed by a deploy leaves its pending deliveries with no
    task to run; re-publishing them would loop for ever, unseen. Staff see the row,
    and resolve or discard it (or retry it once the handler is back). Call inside
    the relay's transaction, holding the delivery's row lock.
    """
    now = timezone.now()
    message = (
        f"no handler named {delivery.handler!r} is registered: the event's effect was not "
        "applied (was the handler renamed or removed?)"
    )
    EventDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.FAILED)
    failed, _created = FailedTask.objects.get_or_create(
        task_id=task_id,
        defaults={
            "task_name": f"handlers.{delivery.handler}",
            "queue": delivery.queue,
            "args": [delivery.pk],
            "kwargs": {},
            "tenant_id": delivery.tenant_id,
            "event_id": delivery.event_id,
            "delivery": delivery,
            "exception_class": "HandlerMissing",
            "exception_message": message,
            "attempts": max(delivery.publish_count, 1),
            "first_failed_at": now,
            "last_failed_at": now,
        },
    )
    _act(failed_task=failed, action="failed", note=message)
    _schedule_staff_alert()
    logger.error(
        "delivery %s has no handler %s: recorded for review, not re-published",
        delivery.pk,
        delivery.handler,
    )
    return failed


def _act(*, failed_task: FailedTask, **fields: Any) -> None:
    """Log what happened to a failed task; the open failed-task lists show it after commit."""
    FailedTaskAction.objects.create(failed_task=failed_task, **fields)
    announce(tenant_id=failed_task.tenant_id, topic=FAILED_TASK)


def _qualified_name(exception: BaseException | None) -> str:
    if exception is None:
        return "Unknown"
    cls = type(exception)
    return cls.__name__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _schedule_staff_alert() -> None:
    """After commit: one staff digest a little later (failures in a burst share it)."""
    enqueue_on_commit(
        STAFF_ALERT_TASK,
        countdown=settings.FAILED_TASK_ALERT_BATCH_SECONDS,
        caught_up_by="the periodic staff-alert sweep",
    )


# --- Staff actions -------------------------------------------------------------


def failed_task_retry(*, failed_task: FailedTask, user: Any, note: str = "") -> None:
    """Re-enqueue the original task with its original arguments."""
    with transaction.atomic():
        failed = FailedTask.objects.select_for_update().get(pk=failed_task.pk)
        if failed.status in (FailedTaskStatus.RESOLVED, FailedTaskStatus.DISCARDED):
            raise ValueError(f"{failed} is {failed.get_status_display().lower()}; nothing to retry")
        failed.status = FailedTaskStatus.RETRYING
        failed.acted_by = user
        failed.acted_at = timezone.now()
        failed.action_note = note
        failed.save(update_fields=["status", "acted_by", "acted_at", "action_note"])
        _act(failed_task=failed, action="retry", user=user, note=note)
        if failed.delivery_id:
            EventDelivery.objects.filter(pk=failed.delivery_id).exclude(
                status=DeliveryStatus.DONE
            ).update(status=DeliveryStatus.PENDING, due_at=timezone.now() + relay_backoff(0))

        def send() -> None:
            forget_starts(failed.task_id)
            app.send_task(
                failed.task_name,
                args=failed.args,
                kwargs=failed.kwargs,
                task_id=failed.task_id,
                queue=failed.queue or None,
                headers={"tenant_id": failed.tenant_id, "failed_task_id": failed.pk},
            )

        transaction.on_commit(send)


def failed_task_resolve(*, failed_task: FailedTask, user: Any, note: str) -> None:
    _close(failed_task, user=user, note=note, status=FailedTaskStatus.RESOLVED, action="resolve")


def failed_task_discard(*, failed_task: FailedTask, user: Any, reason: str) -> None:
    if not reason.strip():
        raise ValueError("A reason is required to discard a failed task.")
    _close(failed_task, user=user, note=reason, status=FailedTaskStatus.DISCARDED, action="discard")


def _close(failed_task: FailedTask, *, user: Any, note: str, status: str, action: str) -> None:
    with transaction.atomic():
        failed = FailedTask.objects.select_for_update().get(pk=failed_task.pk)
        failed.status = status
        failed.acted_by = user
        failed.acted_at = timezone.now()
        failed.action_note = note
        failed.save(update_fields=["status", "acted_by", "acted_at", "action_note"])
        _act(failed_task=failed, action=action, user=user, note=note)


def failed_tasks_resolve_for_delivery(*, delivery: EventDelivery) -> None:
    """The delivery was applied (staff retry or a late copy): close its open reviews."""
    now = timezone.now()
    for failed in FailedTask.objects.select_for_update().filter(
        delivery=delivery, status__in=[FailedTaskStatus.OPEN, FailedTaskStatus.RETRYING]
    ):
        failed.status = FailedTaskStatus.RESOLVED
        failed.acted_at = now
        failed.save(update_fields=["status", "acted_at"])
        _act(failed_task=failed, action="succeeded", note="re-run succeeded")


def record_task_success(sender: Any = None, **kwargs: Any) -> None:
    """task_success receiver: a staff retry that succeeded resolves its FailedTask.

    Only messages sent by ``failed_task_retry`` carry the header, so ordinary
    tasks pay no query here.
    """
    request = getattr(sender, "request", None)
    failed_task_id = getattr(request, "failed_task_id", None)
    if failed_task_id is None:
        return
    with transaction.atomic():
        failed = FailedTask.objects.select_for_update().filter(pk=failed_task_id).first()
        if failed is None or failed.status not in (
            FailedTaskStatus.RETRYING,
            FailedTaskStatus.OPEN,
        ):
            return
        failed.status = FailedTaskStatus.RESOLVED
        failed.acted_at = timezone.now()
        failed.save(update_fields=["status", "acted_at"])
        _act(failed_task=failed, action="succeeded", note="retry succeeded")
