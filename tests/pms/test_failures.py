"""What gives up becomes one FailedTask row for staff, and what staff do with it.

In this process: the ``task_failure`` receiver called as Celery calls it, and the staff
actions as the admin calls them. The worker's side (a real task failing, a retry from
the admin page re-running it) is in test_pipeline.py and test_failed_task_admin.py.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django.utils import timezone

from pms.choices import DeliveryStatus, FailedTaskStatus
from pms.models import EventDelivery, FailedTask
from pms.pipeline.deadlines import relay_backoff
from pms.pipeline.errors import PermanentError
from pms.pipeline.failures import (
    STAFF_ALERT_TASK,
    failed_task_discard,
    failed_task_resolve,
    failed_task_retry,
    failed_tasks_resolve_for_delivery,
    record_delivery_without_handler,
    record_task_failure,
    record_task_success,
)
from pms.pipeline.publishing import BULK_QUEUE, delivery_task_id
from pms.pipeline.redis_client import redis_client
from pms.pipeline.registry import get_handler
from pms.pipeline.task_base import poison_key
from pms.tasks import relay_outbox
from tests.support.broker import queued_messages
from tests.support.pipeline import emit_probe

pytestmark = pytest.mark.django_db
HANDLER = "tests.effect"


@pytest.fixture
def handler_task() -> Iterator[Any]:
    handler = get_handler(HANDLER)
    assert handler is not None and handler.task is not None
    yield handler.task


def _raised(exception: BaseException) -> BaseException:
    try:
        raise exception
    except BaseException as caught:
        return caught


def _fail(
    task: Any, task_id: str, exception: BaseException | None, args: list[Any], **request: Any
):
    """What Celery's task_failure signal does after the task's last attempt."""
    task.push_request(id=task_id, args=args, kwargs={}, **request)
    try:
        return record_task_failure(
            sender=task, task_id=task_id, exception=exception, args=args, kwargs={}, einfo=None
        )
    finally:
        task.pop_request()


def _delivery(event) -> EventDelivery:
    return EventDelivery.objects.get(event=event, handler=HANDLER)


def test_a_handler_that_gives_up_fails_its_delivery_for_review(
    alice, handler_task, own_broker, django_capture_on_commit_callbacks, caplog
):
    event = emit_probe(alice.tenant)
    delivery = _delivery(event)
    task_id = delivery_task_id(event.id, HANDLER)
    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        recorded = _fail(
            handler_task,
            task_id,
            _raised(PermanentError("simulated bad data")),
            [delivery.pk],
            retries=2,
            delivery_info={"routing_key": "bookings"},
        )
    failed = FailedTask.objects.get(task_id=task_id)
    assert recorded == failed
    assert failed.task_name == f"handlers.{HANDLER}" and failed.queue == "bookings"
    assert failed.args == [delivery.pk] and failed.kwargs == {}
    assert (failed.tenant_id, failed.event_id, failed.delivery_id) == (
        alice.tenant.pk,
        event.id,
        delivery.pk,
    )
    assert failed.exception_class == "pms.pipeline.errors.PermanentError"
    assert failed.exception_message == "simulated bad data"
    assert "raise exception" in failed.traceback and "PermanentError" in failed.traceback
    assert failed.attempts == 3 and failed.failure_count == 1
    assert failed.status == FailedTaskStatus.OPEN
    assert before <= failed.first_failed_at == failed.last_failed_at <= timezone.now()
    (action,) = failed.actions.all()
    assert (action.action, action.note) == (
        "failed",
        "pms.pipeline.errors.PermanentError: simulated bad data",
    )
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    (alert,) = queued_messages(own_broker.url)
    assert alert.task == STAFF_ALERT_TASK
    assert alert.headers["eta"]  # a moment later: failures in a burst share one digest
    assert (
        f"task gave up, recorded for review: task=handlers.{HANDLER} id={task_id} "
        f"tenant={alice.tenant.pk} error=pms.pipeline.errors.PermanentError"
    ) in caplog.messages


def test_the_same_task_failing_again_reopens_its_one_review(alice, handler_task, superuser):
    event = emit_probe(alice.tenant)
    delivery = _delivery(event)
    task_id = delivery_task_id(event.id, HANDLER)
    _fail(handler_task, task_id, _raised(PermanentError("first")), [delivery.pk], retries=2)
    failed = FailedTask.objects.get(task_id=task_id)
    failed_task_resolve(failed_task=failed, user=superuser, note="fixed by hand")
    FailedTask.objects.filter(pk=failed.pk).update(alerted_at=timezone.now())

    _fail(handler_task, task_id, _raised(ValueError("second")), [delivery.pk], retries=1)
    again = FailedTask.objects.get(task_id=task_id)
    assert again.pk == failed.pk
    assert again.status == FailedTaskStatus.OPEN and again.alerted_at is None
    assert again.failure_count == 2 and again.attempts == 3 + 2
    assert (again.exception_class, again.exception_message) == ("ValueError", "second")
    assert "ValueError: second" in again.traceback
    assert again.last_failed_at > again.first_failed_at
    assert [a.action for a in again.actions.order_by("pk")] == ["failed", "resolve", "failed"]
    assert [a.note for a in again.actions.order_by("pk")][-1] == "ValueError: second"


def test_a_late_copy_failing_after_the_delivery_was_applied_is_not_a_failure(
    alice, handler_task, caplog
):
    event = emit_probe(alice.tenant)
    delivery = _delivery(event)
    EventDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.DONE)
    task_id = delivery_task_id(event.id, HANDLER)
    recorded = _fail(handler_task, task_id, _raised(PermanentError("late")), [delivery.pk])
    assert recorded is not None and recorded.pk is None and recorded.task_id == task_id
    assert not FailedTask.objects.exists()
    assert (
        f"failure of handlers.{HANDLER}[{task_id}] ignored: delivery already applied"
    ) in caplog.messages
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DONE


def test_a_failed_task_that_is_not_a_delivery_is_recorded_with_its_tenant_and_queue(
    alice, handler_task
):
    """A plain task (a send, a sync): its tenant from the message header, its queue from
    the routing key even when a delayed retry prefixed it with RabbitMQ's delay bits."""
    task = relay_outbox
    delayed_key = "0." * 28 + "messaging"
    _fail(
        task,
        "plain-task",
        _raised(RuntimeError("smtp down")),
        [7, "x"],
        retries=0,
        tenant_id=alice.tenant.pk,
        delivery_info={"routing_key": delayed_key},
    )
    failed = FailedTask.objects.get(task_id="plain-task")
    assert failed.queue == "messaging" and failed.tenant_id == alice.tenant.pk
    assert failed.delivery_id is None and failed.event_id is None
    assert failed.args == [7, "x"] and failed.attempts == 1
    assert failed.exception_class == "RuntimeError"

    # A handler task whose argument is not a delivery id: recorded, with no delivery.
    _fail(handler_task, "odd-args", _raised(RuntimeError("bad")), ["not-an-id"])
    odd = FailedTask.objects.get(task_id="odd-args")
    assert odd.delivery_id is None and odd.queue == "bookings"


def test_the_failure_receiver_never_raises(handler_task, caplog):
    assert record_task_failure(sender=None, task_id="x") is None
    assert record_task_failure(sender=handler_task, task_id=None) is None
    assert caplog.messages == []  # nothing to record, nothing went wrong

    class Broken:
        name = "pms.tasks.broken"
        request = type("Request", (), {"retries": "not a number"})()

    assert record_task_failure(sender=Broken(), task_id="broken", exception=None) is None
    assert not FailedTask.objects.exists()
    assert caplog.messages == ["could not record failure of pms.tasks.broken[broken]"]


def test_long_errors_are_cut_to_what_a_review_needs(alice, handler_task):
    event = emit_probe(alice.tenant)
    delivery = _delivery(event)
    task_id = delivery_task_id(event.id, HANDLER)
    handler_task.push_request(id=task_id, args=[delivery.pk], kwargs={})
    try:
        record_task_failure(
            sender=handler_task,
            task_id=task_id,
            exception=RuntimeError("x" * 20_000),
            args=[delivery.pk],
            kwargs={},
            einfo=SimpleNamespace(traceback="Traceback (celery)\n" + "y" * 60_000),
        )
    finally:
        handler_task.pop_request()
    failed = FailedTask.objects.get(task_id=task_id)
    assert failed.exception_message == "x" * 10_000
    assert failed.traceback.startswith("Traceback (celery)") and len(failed.traceback) == 50_000
    assert failed.actions.get().note == ("RuntimeError: " + "x" * 20_000)[:2000]


def test_a_delivery_whose_handler_is_gone_is_recorded_for_review(alice, caplog):
    event = emit_probe(alice.tenant)
    delivery = _delivery(event)
    EventDelivery.objects.filter(pk=delivery.pk).update(
        handler="tests.renamed_away", publish_count=4
    )
    delivery.refresh_from_db()
    failed = record_delivery_without_handler(delivery=delivery, task_id="orphan")
    failed.refresh_from_db()
    assert failed.task_name == "handlers.tests.renamed_away" and failed.queue == "bookings"
    assert failed.args == [delivery.pk] and failed.kwargs == {}
    assert (failed.tenant_id, failed.event_id, failed.delivery_id) == (
        alice.tenant.pk,
        event.id,
        delivery.pk,
    )
    assert failed.exception_class == "HandlerMissing" and failed.attempts == 4
    assert failed.exception_message == (
        "no handler named 'tests.renamed_away' is registered: the event's effect was not "
        "applied (was the handler renamed or removed?)"
    )
    assert failed.actions.get().action == "failed"
    assert failed.actions.get().note == failed.exception_message
    assert (
        f"delivery {delivery.pk} has no handler tests.renamed_away: recorded for review, "
        "not re-published"
    ) in caplog.messages
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    # Never published: it still counts one attempt.
    EventDelivery.objects.filter(pk=delivery.pk).update(publish_count=0)
    delivery.refresh_from_db()
    assert record_delivery_without_handler(delivery=delivery, task_id="orphan-2").attempts == 1


def _review(world, delivery: EventDelivery | None = None, **fields: Any) -> FailedTask:
    now = timezone.now()
    return FailedTask.objects.create(
        **{
            "task_id": delivery_task_id(delivery.event_id, HANDLER) if delivery else "task-1",
            "task_name": f"handlers.{HANDLER}",
            "queue": "bookings",
            "args": [delivery.pk if delivery else 1],
            "kwargs": {"note": "k"},
            "tenant": world.tenant,
            "delivery": delivery,
            "event_id": delivery.event_id if delivery else None,
            "exception_class": "RuntimeError",
            "first_failed_at": now,
            "last_failed_at": now,
            **fields,
        }
    )


def test_a_staff_retry_sends_the_original_task_again_with_fresh_attempts(
    alice, own_broker, django_capture_on_commit_callbacks
):
    event = emit_probe(alice.tenant)
    delivery = _delivery(event)
    EventDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.FAILED)
    failed = _review(alice, delivery)
    counter = poison_key(failed.task_id, 0)
    redis_client().set(counter, 2, ex=60)
    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        failed_task_retry(failed_task=failed, user=alice.staff, note="receiver fixed")

    failed.refresh_from_db()
    assert failed.status == FailedTaskStatus.RETRYING
    assert failed.acted_by == alice.staff and failed.action_note == "receiver fixed"
    assert failed.acted_at is not None and failed.acted_at >= before
    action = failed.actions.get()
    assert (action.action, action.user, action.note) == ("retry", alice.staff, "receiver fixed")
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING
    # The relay leaves the retry one deadline to arrive (not a backoff: nothing was lost).
    assert before + relay_backoff(0) <= delivery.due_at <= timezone.now() + relay_backoff(0)
    assert not redis_client().exists(counter)
    (message,) = queued_messages(own_broker.url)
    assert (message.task, message.task_id, message.queue) == (
        f"handlers.{HANDLER}",
        failed.task_id,
        "bookings",
    )
    assert message.args == [delivery.pk] and message.kwargs == {"note": "k"}
    assert message.headers["tenant_id"] == alice.tenant.pk
    assert message.headers["failed_task_id"] == failed.pk


def test_a_staff_retry_leaves_an_applied_delivery_applied(
    alice, own_broker, django_capture_on_commit_callbacks
):
    event = emit_probe(alice.tenant)
    delivery = _delivery(event)
    EventDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.DONE)
    with django_capture_on_commit_callbacks(execute=True):
        failed_task_retry(failed_task=_review(alice, delivery), user=alice.staff)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DONE


@pytest.mark.parametrize("closed", [FailedTaskStatus.RESOLVED, FailedTaskStatus.DISCARDED])
def test_a_closed_review_cannot_be_retried(alice, closed, django_capture_on_commit_callbacks):
    failed = _review(alice, status=closed)
    with (
        django_capture_on_commit_callbacks() as sent,
        pytest.raises(ValueError) as refused,
    ):
        failed_task_retry(failed_task=failed, user=alice.staff)
    assert sent == []
    word = {FailedTaskStatus.RESOLVED: "resolved", FailedTaskStatus.DISCARDED: "discarded"}[closed]
    assert str(refused.value) == f"{failed} is {word}; nothing to retry"  # the admin shows it
    failed.refresh_from_db()
    assert failed.status == closed and not failed.actions.exists()


def test_resolving_and_discarding_record_who_why_and_when(alice, bob):
    resolved, discarded = _review(alice, task_id="a"), _review(alice, task_id="b")
    before = timezone.now()
    failed_task_resolve(failed_task=resolved, user=alice.manager, note="refunded by hand")
    with pytest.raises(ValueError) as refused:
        failed_task_discard(failed_task=discarded, user=alice.staff, reason="  ")
    assert str(refused.value) == "A reason is required to discard a failed task."
    failed_task_discard(failed_task=discarded, user=alice.staff, reason="duplicate")
    for failed, status, user, note, action in (
        (resolved, FailedTaskStatus.RESOLVED, alice.manager, "refunded by hand", "resolve"),
        (discarded, FailedTaskStatus.DISCARDED, alice.staff, "duplicate", "discard"),
    ):
        failed.refresh_from_db()
        assert (failed.status, failed.acted_by, failed.action_note) == (status, user, note)
        assert failed.acted_at is not None and failed.acted_at >= before
        assert [(a.action, a.user, a.note) for a in failed.actions.all()] == [(action, user, note)]


def test_an_applied_delivery_closes_its_open_reviews_only(alice):
    event = emit_probe(alice.tenant)
    delivery = _delivery(event)
    now = timezone.now()
    open_ = _review(alice, delivery)
    retrying = _review(alice, delivery, task_id="retrying", status=FailedTaskStatus.RETRYING)
    discarded = _review(alice, delivery, task_id="discarded", status=FailedTaskStatus.DISCARDED)
    failed_tasks_resolve_for_delivery(delivery=delivery)
    for failed in (open_, retrying):
        failed.refresh_from_db()
        assert failed.status == FailedTaskStatus.RESOLVED
        assert failed.acted_at is not None and failed.acted_at >= now
        assert failed.actions.get().action == "succeeded"
    discarded.refresh_from_db()
    assert discarded.status == FailedTaskStatus.DISCARDED and not discarded.actions.exists()


class _Finished:
    """A task as Celery's task_success signal sends it: its request carries the headers."""

    def __init__(self, **headers: Any) -> None:
        self.request = type("Request", (), headers)()


def test_a_staff_retry_that_succeeds_resolves_its_review(alice):
    retried = _review(alice, status=FailedTaskStatus.RETRYING)
    before = timezone.now()
    record_task_success(sender=_Finished(failed_task_id=retried.pk))
    retried.refresh_from_db()
    assert retried.status == FailedTaskStatus.RESOLVED
    assert retried.acted_at is not None and retried.acted_at >= before
    assert (retried.actions.get().action, retried.actions.get().note) == (
        "succeeded",
        "retry succeeded",
    )
    # Only a message sent by a staff retry carries the header; a closed review stays closed.
    discarded = _review(alice, task_id="gone", status=FailedTaskStatus.DISCARDED)
    record_task_success(sender=_Finished())
    record_task_success(sender=_Finished(failed_task_id=discarded.pk))
    record_task_success(sender=_Finished(failed_task_id=10**9))
    discarded.refresh_from_db()
    assert discarded.status == FailedTaskStatus.DISCARDED and not discarded.actions.exists()


def test_an_open_review_whose_retry_succeeds_is_resolved_too(alice):
    failed = _review(alice, last_failed_at=timezone.now() - timedelta(minutes=1))
    record_task_success(sender=_Finished(failed_task_id=failed.pk))
    failed.refresh_from_db()
    assert failed.status == FailedTaskStatus.RESOLVED


def test_a_staff_retry_goes_back_to_the_queue_the_task_failed_on(
    alice, own_broker, django_capture_on_commit_callbacks
):
    """A delivery of bulk work failed on the bulk queue: its retry must not jump the
    handler's own queue, in front of other tenants' bookings."""
    event = emit_probe(alice.tenant)
    delivery = _delivery(event)
    failed = _review(alice, delivery, queue=BULK_QUEUE)
    with django_capture_on_commit_callbacks(execute=True):
        failed_task_retry(failed_task=failed, user=alice.staff)
    (message,) = queued_messages(own_broker.url)
    assert message.queue == BULK_QUEUE


def test_an_applied_delivery_closes_its_own_reviews_not_another_deliverys(alice):
    first, second = (
        emit_probe(alice.tenant, aggregate_id="a"),
        emit_probe(alice.tenant, aggregate_id="b"),
    )
    mine = _review(alice, _delivery(first))
    other = _review(alice, _delivery(second))
    failed_tasks_resolve_for_delivery(delivery=_delivery(first))
    mine.refresh_from_db()
    other.refresh_from_db()
    assert mine.status == FailedTaskStatus.RESOLVED
    assert (mine.actions.get().action, mine.actions.get().note) == ("succeeded", "re-run succeeded")
    assert other.status == FailedTaskStatus.OPEN and not other.actions.exists()


def test_a_plain_task_whose_first_argument_is_a_delivery_id_is_not_that_delivery(alice):
    """Only a handler task's argument is a delivery: a send task failing with args [42]
    must not fail (or later resolve) delivery 42's review."""
    delivery = _delivery(emit_probe(alice.tenant))
    _fail(relay_outbox, "plain-with-id", _raised(RuntimeError("x")), [delivery.pk])
    failed = FailedTask.objects.get(task_id="plain-with-id")
    assert failed.delivery_id is None and failed.event_id is None
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING


def test_a_failure_keeps_its_keyword_arguments_and_builds_a_traceback_when_celery_has_none(
    alice, handler_task
):
    exception = _raised(RuntimeError("gateway said no"))
    relay_outbox.push_request(id="with-kwargs", args=[], kwargs={"batch": 3})
    try:
        record_task_failure(
            sender=relay_outbox,
            task_id="with-kwargs",
            exception=exception,
            args=[],
            kwargs={"batch": 3},
            einfo=None,
        )
    finally:
        relay_outbox.pop_request()
    failed = FailedTask.objects.get(task_id="with-kwargs")
    assert failed.kwargs == {"batch": 3}  # a retry sends them again
    assert failed.traceback == "".join(traceback.format_exception(exception))
    _fail(handler_task, "no-exception", None, ["x"])  # Celery gave no exception
    assert FailedTask.objects.get(task_id="no-exception").exception_class == "Unknown"
