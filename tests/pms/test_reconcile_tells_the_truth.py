"""Reconcile reports every way a delivery can end up neither applied nor visibly failed,
each as its own category; the relay fails a delivery whose handler is gone instead of
re-publishing it for ever; a retry whose publish fails is recorded, not dropped."""

from __future__ import annotations

from datetime import timedelta

import pytest
from celery.exceptions import Reject
from django.core.management import CommandError, call_command
from django.utils import timezone

from pms.choices import DeliveryStatus, FailedTaskStatus
from pms.models import EventDelivery, FailedTask
from pms.pipeline.errors import TransientError
from pms.pipeline.failures import failed_task_discard, failed_task_resolve
from pms.pipeline.publishing import broker_breaker, delivery_task_id
from pms.pipeline.reconcile import reconcile
from pms.pipeline.registry import get_handler
from pms.pipeline.relay import relay_due_deliveries
from tests.support.pipeline import emit_probe

HANDLER = "tests.effect"


def _delivery(event):
    return EventDelivery.objects.get(event=event, handler=HANDLER)


def _other_deliveries_done(event):
    EventDelivery.objects.filter(event=event).exclude(handler=HANDLER).update(
        status=DeliveryStatus.DONE, completed_at=timezone.now()
    )


def _failed_with_review(event, superuser):
    delivery = _delivery(event)
    EventDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.FAILED)
    now = timezone.now()
    return FailedTask.objects.create(
        task_id=delivery_task_id(event.id, HANDLER),
        task_name=f"handlers.{HANDLER}",
        args=[delivery.pk],
        tenant_id=delivery.tenant_id,
        event=event,
        delivery=delivery,
        exception_class="RuntimeError",
        first_failed_at=now,
        last_failed_at=now,
    )


@pytest.mark.django_db
@pytest.mark.parametrize("close", ["resolve", "discard"])
def test_a_failed_delivery_whose_review_was_closed_without_the_effect_is_not_ok(
    alice, superuser, close, capsys
):
    event = emit_probe(alice.tenant)
    _other_deliveries_done(event)
    failed = _failed_with_review(event, superuser)
    assert reconcile().ok  # open for review: visible, that is the invariant

    if close == "resolve":
        failed_task_resolve(failed_task=failed, user=superuser, note="looked at it")
    else:
        failed_task_discard(failed_task=failed, user=superuser, reason="not needed")
    report = reconcile()
    assert report.failed_review_closed == 1 and report.failed_for_review == 0
    assert not report.ok
    with pytest.raises(CommandError, match="1 failed with the review closed but not applied"):
        call_command("reconcile")


@pytest.mark.django_db
def test_a_pending_delivery_whose_handler_is_gone_is_not_ok_and_the_relay_fails_it_for_review(
    alice,
):
    broker_breaker.reset()
    event = emit_probe(alice.tenant)
    _other_deliveries_done(event)
    delivery = _delivery(event)
    EventDelivery.objects.filter(pk=delivery.pk).update(
        handler="tests.renamed_away", due_at=timezone.now() - timedelta(minutes=1)
    )
    report = reconcile()
    assert report.pending_without_handler == 1 and report.overdue == 0 and not report.ok

    assert relay_due_deliveries() == 0
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    failed = FailedTask.objects.get(delivery=delivery)
    assert (
        failed.status == FailedTaskStatus.OPEN and "tests.renamed_away" in failed.exception_message
    )
    report = reconcile()
    assert report.pending_without_handler == 0 and report.failed_for_review == 1 and report.ok

    # Not picked up again: the relay has nothing left to send.
    EventDelivery.objects.filter(pk=delivery.pk).update(
        due_at=timezone.now() - timedelta(minutes=1)
    )
    assert relay_due_deliveries() == 0
    assert FailedTask.objects.filter(delivery=delivery).count() == 1


@pytest.mark.django_db
def test_a_delivery_published_many_times_and_never_applied_is_not_in_flight(alice, settings):
    settings.RECONCILE_MAX_PUBLISHES = 5
    event = emit_probe(alice.tenant)
    _other_deliveries_done(event)
    EventDelivery.objects.filter(event=event, handler=HANDLER).update(
        publish_count=4, due_at=timezone.now() + timedelta(minutes=10)
    )
    assert reconcile().in_flight == 1 and reconcile().ok
    EventDelivery.objects.filter(event=event, handler=HANDLER).update(publish_count=5)
    report = reconcile()
    assert report.republished_unapplied == 1 and report.in_flight == 0 and not report.ok
    with pytest.raises(CommandError, match="1 re-published 5\\+ times and never applied"):
        call_command("reconcile")


@pytest.mark.django_db(transaction=True)
def test_a_retry_whose_publish_fails_is_recorded_as_a_failed_task(alice, own_broker):
    broker_breaker.trip()  # the commit-time publish is not what this is about
    try:
        event = emit_probe(alice.tenant)
    finally:
        broker_breaker.reset()
    delivery = _delivery(event)
    handler = get_handler(HANDLER)
    assert handler is not None and handler.task is not None
    task = handler.task
    task_id = delivery_task_id(event.id, HANDLER)
    task.push_request(
        id=task_id,
        args=[delivery.pk],
        kwargs={},
        retries=0,
        called_directly=False,
        is_eager=False,
        delivery_info={"exchange": "", "routing_key": "bookings"},
    )
    own_broker.server.stop()
    try:
        with pytest.raises(Reject):
            task.retry(exc=TransientError("simulated remote 503"), countdown=1)
    finally:
        task.pop_request()
        own_broker.server.start()
    failed = FailedTask.objects.get(task_id=task_id)
    assert failed.delivery_id == delivery.pk and failed.status == FailedTaskStatus.OPEN
    assert "could not publish the retry" in failed.exception_message
    assert "simulated remote 503" in failed.exception_message
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
