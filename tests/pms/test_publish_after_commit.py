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
from django.utils import timezone

from pms.choices import DeliveryStatus
from pms.models import EventDelivery
from pms.pipeline.publishing import broker_breaker, delivery_task_id, publish_deliveries
from tests.support.broker import queued_messages
from tests.support.pipeline import emit_probe

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _breaker_closed() -> Iterator[None]:
    broker_breaker.reset()
    yield
    broker_breaker.reset()


def test_a_refused_publish_leaves_its_deliveries_due_now_for_the_relay(
    alice, own_broker, django_capture_on_commit_callbacks, caplog
):
    own_broker.server.stop()
    try:
        with django_capture_on_commit_callbacks(execute=True):
            event = emit_probe(alice.tenant)  # the request is not failed by the broker
        after = timezone.now()
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
