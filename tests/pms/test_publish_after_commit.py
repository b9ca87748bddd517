"""OUTBOX_PUBLISH=commit when the broker refuses: the deliveries wait for the relay, due now.

The suite's default mode (tests/conftest.py): the emitting process publishes in an
on-commit hook. A refused publish never fails the request; its deliveries are brought
forward so the relay's next pass sends them, and for a few seconds nobody waits for
the broker's connection timeout again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from django.db import transaction
from django.utils import timezone

from pms.choices import DeliveryStatus
from pms.models import DomainEvent, EventDelivery
from pms.pipeline.publishing import (
    BULK_QUEUE,
    broker_breaker,
    bulk_events,
    delivery_task_id,
    emit_event,
    publish_deliveries,
)
from tests.support.broker import queued_messages
from tests.support.fault_handlers import PROBE_EVENT
from tests.support.pipeline import deliveries_refuse_updates, emit_probe

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _breaker_closed() -> Iterator[None]:
    broker_breaker.reset()
    yield
    broker_breaker.reset()


def test_a_refused_publish_leaves_its_deliveries_due_now_for_the_relay(
    alice, own_broker, django_capture_on_commit_callbacks, caplog
):
    bystander = emit_probe(alice.tenant, aggregate_id="bystander")  # pending, not sent here
    bystanders = dict(EventDelivery.objects.filter(event=bystander).values_list("pk", "due_at"))
    own_broker.server.stop()
    try:
        with django_capture_on_commit_callbacks(execute=True):
            event = emit_probe(alice.tenant)  # the request is not failed by the broker
        after = timezone.now()
        # Only the refused deliveries are brought forward, never every pending one.
        assert (
            dict(EventDelivery.objects.filter(event=bystander).values_list("pk", "due_at"))
            == bystanders
        )
        deliveries = list(EventDelivery.objects.filter(event=event))
        assert len(deliveries) == 2
        assert all(d.due_at <= after and d.status == DeliveryStatus.PENDING for d in deliveries)
        assert broker_breaker.is_open()
        assert any(
            message.startswith(
                f"publish failed, relay will deliver: tenant={alice.tenant.pk} "
                f"event={event.id} deliveries=2 error="
            )
            for message in caplog.messages
        )

        # While the breaker is open the next publish does not wait for the broker.
        started = time.monotonic()
        with django_capture_on_commit_callbacks(execute=True):
            second = emit_probe(alice.tenant, aggregate_id="second")
        assert time.monotonic() - started < 1
        assert all(d.due_at <= timezone.now() for d in EventDelivery.objects.filter(event=second))
    finally:
        own_broker.server.start()
    broker_breaker.reset()
    assert publish_deliveries(EventDelivery.objects.filter(event=event)) == 2
    assert len(queued_messages(own_broker.url)) == 2


def test_an_applied_delivery_is_not_brought_forward(alice):
    event = emit_probe(alice.tenant)
    applied, pending = EventDelivery.objects.filter(event=event).order_by("pk")
    EventDelivery.objects.filter(pk=applied.pk).update(status=DeliveryStatus.DONE)
    applied.refresh_from_db()
    broker_breaker.trip()
    assert publish_deliveries([applied, pending]) == 0
    assert publish_deliveries([]) == 0
    applied_due = EventDelivery.objects.get(pk=applied.pk).due_at
    assert applied_due == applied.due_at
    assert EventDelivery.objects.get(pk=pending.pk).due_at <= timezone.now()
    # The relay's own sends are not brought forward: it reschedules them itself.
    EventDelivery.objects.filter(pk=pending.pk).update(due_at=pending.due_at)
    assert publish_deliveries([pending], on_failure_due_now=False) == 0
    assert EventDelivery.objects.get(pk=pending.pk).due_at == pending.due_at


def test_each_delivery_has_one_task_id_for_every_send():
    event_id = uuid.uuid4()
    first = delivery_task_id(event_id, "bookings.calendar")
    assert first == delivery_task_id(str(event_id), "bookings.calendar")  # a re-send
    assert str(uuid.UUID(first)) == first
    assert first != delivery_task_id(event_id, "bookings.ledger")
    assert first != delivery_task_id(uuid.uuid4(), "bookings.calendar")


def test_after_commit_each_delivery_goes_to_its_handlers_queue_as_its_own_task(
    alice, own_broker, django_capture_on_commit_callbacks, settings
):
    with django_capture_on_commit_callbacks(execute=True):
        event = emit_probe(alice.tenant)
    deliveries = {d.pk: d for d in EventDelivery.objects.filter(event=event)}
    messages = queued_messages(own_broker.url)
    assert sorted(m.args[0] for m in messages) == sorted(deliveries)
    for message in messages:
        delivery = deliveries[message.args[0]]
        assert (
            message.queue
            == delivery.queue
            == {"tests.effect": "bookings"}.get(delivery.handler, "accounting")
        )
        assert message.task_id == delivery_task_id(event.id, delivery.handler)
        assert message.headers["tenant_id"] == alice.tenant.pk
        assert message.headers["event_id"] == str(event.id)
        assert delivery.tenant_id == alice.tenant.pk and delivery.publish_count == 0
        assert delivery.due_at == delivery.created_at + settings.OUTBOX_DELIVERY_DEADLINE
        assert delivery.created_at == event.created_at


def test_events_caused_in_bulk_go_to_the_bulk_queue(
    alice, own_broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True), bulk_events():
        event = emit_probe(alice.tenant)
    assert {d.queue for d in EventDelivery.objects.filter(event=event)} == {BULK_QUEUE}
    assert {m.queue for m in queued_messages(own_broker.url)} == {BULK_QUEUE}
    after = emit_probe(alice.tenant, aggregate_id="after")  # outside: the handlers' queues
    assert {d.queue for d in EventDelivery.objects.filter(event=after)} == {
        "bookings",
        "accounting",
    }


def test_an_events_actor_is_cut_to_its_column_and_its_aggregate_id_is_text(alice):
    with transaction.atomic():
        event = emit_event(
            tenant_id=alice.tenant.pk,
            aggregate_type="probe",
            aggregate_id=7,
            event_type=PROBE_EVENT,
            payload={"mode": "ok"},
            actor="a" * 200,
        )
        plain = emit_event(
            tenant_id=alice.tenant.pk,
            aggregate_type="probe",
            aggregate_id=7,
            event_type=PROBE_EVENT,
            payload={"mode": "ok"},
        )
    stored = DomainEvent.objects.get(pk=event.pk)
    assert stored.actor == "a" * 150 and stored.aggregate_id == "7"
    assert DomainEvent.objects.get(pk=plain.pk).actor == ""
    assert (stored.sequence, plain.sequence) == (1, 2)


@pytest.mark.django_db(transaction=True)
def test_deliveries_that_cannot_be_brought_forward_are_logged_and_left_to_their_deadline(
    alice, own_broker, caplog, settings
):
    event = emit_probe(alice.tenant)  # published: moved off its deadline below
    deliveries = list(EventDelivery.objects.filter(event=event))
    own_broker.server.stop()
    try:
        with deliveries_refuse_updates("NEW.due_at < OLD.due_at"):
            assert publish_deliveries(deliveries) == 0
    finally:
        own_broker.server.start()
    (record,) = [r for r in caplog.records if "unsent deliveries" in r.getMessage()]
    assert record.getMessage() == "could not bring 2 unsent deliveries forward"
    assert record.levelname == "ERROR"
    assert record.exc_info and record.exc_info[0] is not None  # the traceback, logged
    for delivery in EventDelivery.objects.filter(event=event):  # untouched: due at deadline
        assert delivery.due_at == delivery.created_at + settings.OUTBOX_DELIVERY_DEADLINE


def test_an_event_nobody_subscribes_to_is_recorded_alone_with_its_sequence(alice):
    with transaction.atomic():
        first = emit_event(
            tenant_id=alice.tenant.pk,
            aggregate_type="probe",
            aggregate_id="quiet",
            event_type="tests.nobody_listens",
            payload={},
        )
        second = emit_event(
            tenant_id=alice.tenant.pk,
            aggregate_type="probe",
            aggregate_id="quiet",
            event_type="tests.nobody_listens",
            payload={},
        )
    assert (first.sequence, second.sequence) == (1, 2)
    assert not EventDelivery.objects.filter(event__in=[first, second]).exists()
    # The returned event is the stored row: saving it again updates, never inserts.
    first.payload = {"edited": True}
    first.save()
    assert DomainEvent.objects.get(pk=first.pk).payload == {"edited": True}


def test_a_delivery_whose_handler_is_unknown_is_skipped_and_named(alice, own_broker, caplog):
    event = emit_probe(alice.tenant)
    orphan, kept = EventDelivery.objects.filter(event=event).order_by("pk")
    orphan.handler = "tests.renamed_away"
    assert publish_deliveries([orphan, kept]) == 1
    assert [m.args for m in queued_messages(own_broker.url)] == [[kept.pk]]
    (record,) = [r for r in caplog.records if "no handler" in r.getMessage()]
    assert record.getMessage() == f"no handler tests.renamed_away for delivery {orphan.pk}"
    assert record.levelname == "ERROR"


def test_a_refused_batch_is_logged_with_its_first_delivery_and_the_brokers_error(
    alice, bob, own_broker, caplog
):
    first = emit_probe(alice.tenant)
    other = emit_probe(bob.tenant)
    batch = [
        *EventDelivery.objects.filter(event=first).order_by("pk"),
        *EventDelivery.objects.filter(event=other).order_by("pk"),
    ]
    own_broker.server.stop()
    try:
        assert publish_deliveries(batch, on_failure_due_now=False) == 0
    finally:
        own_broker.server.start()
    (message,) = [m for m in caplog.messages if m.startswith("publish failed")]
    head = f"publish failed, relay will deliver: tenant={alice.tenant.pk} event={first.id} "
    assert message.startswith(f"{head}deliveries=4 error=")
    error = message.removeprefix(f"{head}deliveries=4 error=")
    assert error and error != "None"


@pytest.mark.django_db(transaction=True)
def test_emitting_outside_the_services_transaction_is_refused():
    with pytest.raises(RuntimeError) as refused:
        emit_event(
            tenant_id=1, aggregate_type="probe", aggregate_id=1, event_type=PROBE_EVENT, payload={}
        )
    assert str(refused.value) == "emit_event must run inside the service's transaction"
