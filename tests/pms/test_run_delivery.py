"""One delivery, in-process: claimed, applied and marked done in one transaction, once."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from celery.exceptions import Retry
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config.celery import app
from pms.choices import DeliveryStatus, FailedTaskStatus
from pms.models import EventDelivery, FailedTask
from pms.pipeline.delivery import EventHandlerTask, make_handler_task, run_delivery
from pms.pipeline.errors import PermanentError, TransientError
from pms.pipeline.publishing import emit_event
from pms.pipeline.redis_client import redis_client
from pms.pipeline.registry import Handler, get_handler
from tests.support import fault_handlers
from tests.support.broker import queued_messages
from tests.support.pipeline import effects, emit_probe

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _effect_table() -> None:
    with connection.cursor() as cursor:
        cursor.execute(fault_handlers.EFFECT_TABLE_SQL)


def _handler() -> Handler:
    handler = get_handler("tests.effect")
    assert handler is not None
    return handler


def _delivery(event) -> EventDelivery:
    return EventDelivery.objects.get(event=event, handler="tests.effect")


def test_a_delivery_is_applied_once_then_its_copies_are_duplicates(alice):
    event = emit_probe(alice.tenant)
    delivery = _delivery(event)
    handler = _handler()
    assert run_delivery(handler, delivery.pk) == "applied"
    assert run_delivery(handler, delivery.pk) == "duplicate"
    assert effects(event) == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DONE and delivery.completed_at is not None
    assert run_delivery(handler, 10**9) == "gone"


def test_the_claim_the_event_and_the_mark_are_one_statement(alice):
    """Begin, the claim (lock, mark done, read the event), the handler's INSERT, commit.

    (In a test's transaction, begin and commit are a savepoint and its release.)
    """
    delivery = _delivery(emit_probe(alice.tenant))
    with CaptureQueriesContext(connection) as queries:
        run_delivery(_handler(), delivery.pk)
    statements = [q["sql"] for q in queries.captured_queries]
    assert len(statements) == 4, statements
    assert statements[1].startswith('UPDATE "pms_eventdelivery"') and "FOR UPDATE" in statements[1]


def test_a_handler_that_raises_leaves_the_delivery_pending(alice):
    event = emit_probe(alice.tenant, mode="permanent")
    redis_client().set(fault_handlers.control_key("fault", event.id), 1, ex=60)
    delivery = _delivery(event)
    with pytest.raises(PermanentError):
        run_delivery(_handler(), delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING and delivery.completed_at is None
    assert effects(event) == 0


def test_a_late_copy_of_a_failed_delivery_resolves_its_review(alice):
    event = emit_probe(alice.tenant)
    delivery = _delivery(event)
    EventDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.FAILED)
    now = timezone.now()
    review = FailedTask.objects.create(
        task_id="late-copy",
        task_name="handlers.tests.effect",
        tenant=alice.tenant,
        event=event,
        delivery=delivery,
        exception_class="TransientError",
        first_failed_at=now,
        last_failed_at=now,
    )
    assert run_delivery(_handler(), delivery.pk) == "applied"
    review.refresh_from_db()
    assert review.status == FailedTaskStatus.RESOLVED
    assert review.actions.filter(action="succeeded").exists()
    assert effects(event) == 1


def test_an_event_its_sequence_and_its_deliveries_are_one_statement(alice, settings):
    """emit_event: the sequence upsert, the event and a delivery per handler in one INSERT
    (with OUTBOX_PUBLISH=notify, one more: the NOTIFY); sequences still count up."""

    def emit(aggregate_id: str):  # type: ignore[no-untyped-def]
        return emit_event(
            tenant_id=alice.tenant.pk,
            aggregate_type="probe",
            aggregate_id=aggregate_id,
            event_type=fault_handlers.PROBE_EVENT,
            payload={"mode": "ok", "when": timezone.now()},
        )

    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        first = emit("one-statement")
    statements = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert len(statements) == 1, statements
    settings.OUTBOX_PUBLISH = "notify"
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        second = emit("one-statement")
    statements = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert len(statements) == 2 and "pg_notify" in statements[1], statements
    assert (first.sequence, second.sequence) == (1, 2)
    stored = EventDelivery.objects.filter(event=second).order_by("pk")
    assert [d.handler for d in stored] == ["tests.effect", "tests.second_effect"]
    assert {d.queue for d in stored} == {"bookings", "accounting"}
    second.refresh_from_db()
    assert second.payload["mode"] == "ok" and isinstance(second.payload["when"], str)


def test_a_handler_becomes_a_task_on_its_queue_that_runs_its_delivery(alice):
    # A name of its own per run: Celery hands back an already registered task unchanged.
    name = f"tests.declared_here_{uuid.uuid4().hex[:8]}"
    handler = Handler(name, "accounting", frozenset({fault_handlers.PROBE_EVENT}), _handler().func)
    task = make_handler_task(handler)
    assert app.tasks[f"handlers.{name}"].name == task.name == f"handlers.{name}"
    assert task.queue == "accounting"
    assert isinstance(task, EventHandlerTask) and task.acks_late  # the pipeline's retries
    event = emit_probe(alice.tenant)
    delivery = _delivery(event)
    assert task(delivery.pk) == "applied"
    assert task(delivery.pk) == "duplicate"
    assert effects(event) == 1


def _retry(task, delivery_id, **options):  # type: ignore[no-untyped-def]
    """What autoretry does when the handler raised a transient error."""
    task.push_request(
        id=f"retry-{delivery_id}",
        args=[delivery_id],
        kwargs={},
        retries=0,
        called_directly=False,
        is_eager=False,
        delivery_info={"exchange": "", "routing_key": "bookings"},
    )
    try:
        with pytest.raises(Retry):
            task.retry(exc=TransientError("simulated remote 503"), **options)
    finally:
        task.pop_request()


def test_a_delivery_waiting_for_its_retry_is_not_re_sent_by_the_relay_meanwhile(
    alice, own_broker, settings
):
    event = emit_probe(alice.tenant)
    delivery = _delivery(event)
    task = _handler().task
    before = timezone.now()
    _retry(task, delivery.pk, countdown=30)
    after = timezone.now()
    delivery.refresh_from_db()
    deferral = timedelta(seconds=30) + settings.OUTBOX_DELIVERY_DEADLINE
    assert before + deferral <= delivery.due_at <= after + deferral
    (message,) = queued_messages(own_broker.url)
    assert message.task_id == f"retry-{delivery.pk}" and message.args == [delivery.pk]
    assert message.headers["retries"] == 1 and message.headers["eta"]
    # The other delivery of the event is not touched.
    other = EventDelivery.objects.get(event=event, handler="tests.second_effect")
    assert other.due_at < before + deferral


def test_a_retry_leaves_an_applied_delivery_and_one_without_a_countdown_alone(alice, own_broker):
    event = emit_probe(alice.tenant)
    delivery = _delivery(event)
    due_at = delivery.due_at
    task = _handler().task
    _retry(task, delivery.pk)  # no countdown: Celery's own default delay, no deferral
    delivery.refresh_from_db()
    assert delivery.due_at == due_at
    EventDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.DONE)
    _retry(task, delivery.pk, countdown=30)
    delivery.refresh_from_db()
    assert delivery.due_at == due_at and delivery.status == DeliveryStatus.DONE


@pytest.mark.django_db(transaction=True)
def test_a_retry_still_goes_out_when_the_database_is_why_it_retries(alice, own_broker, caplog):
    event = emit_probe(alice.tenant)
    delivery = _delivery(event)
    task = _handler().task
    port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = "1"  # nothing listens there: the database is down
    try:
        _retry(task, delivery.pk, countdown=30)
    finally:
        connection.close()
        connection.settings_dict["PORT"] = port
    assert f"could not defer relay for delivery {delivery.pk}" in caplog.messages
    # The retry itself was sent (beside the two messages its commit published).
    (retry,) = [m for m in queued_messages(own_broker.url) if m.task_id == f"retry-{delivery.pk}"]
    assert retry.args == [delivery.pk] and retry.headers["retries"] == 1
    delivery.refresh_from_db()
    assert delivery.due_at < timezone.now() + timedelta(seconds=30)  # not deferred: the relay may
