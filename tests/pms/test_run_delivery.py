"""One delivery, in-process: claimed, applied and marked done in one transaction, once."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from pms.choices import DeliveryStatus, FailedTaskStatus
from pms.models import EventDelivery, FailedTask
from pms.pipeline.delivery import run_delivery
from pms.pipeline.errors import PermanentError
from pms.pipeline.publishing import emit_event
from pms.pipeline.redis_client import redis_client
from pms.pipeline.registry import Handler, get_handler
from tests.support import fault_handlers
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
