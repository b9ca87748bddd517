"""The relay's claim and the reconcile check, without a worker."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import close_old_connections
from django.utils import timezone

from pms.choices import DeliveryStatus
from pms.models import EventDelivery
from pms.pipeline import relay as relay_module
from pms.pipeline.deadlines import relay_backoff
from pms.pipeline.publishing import broker_breaker
from pms.pipeline.reconcile import reconcile
from pms.pipeline.relay import relay_due_deliveries
from tests.support.pipeline import emit_probe


@pytest.mark.django_db(transaction=True)
def test_two_relays_running_at_once_never_send_a_delivery_twice(alice, monkeypatch):
    broker_breaker.trip()  # keep the commit-time publish out of the way
    events = [emit_probe(alice.tenant, aggregate_id=f"relay-{i}") for i in range(120)]
    EventDelivery.objects.update(due_at=timezone.now() - timedelta(minutes=5))
    sent: list[int] = []
    lock = threading.Lock()

    def fake_publish(deliveries, **kwargs):  # record instead of talking to the broker
        with lock:
            sent.extend(d.pk for d in deliveries)
        return len(deliveries)

    monkeypatch.setattr(relay_module, "publish_deliveries", fake_publish)
    barrier = threading.Barrier(2)

    def relay():
        barrier.wait()
        try:
            relay_due_deliveries(batch_size=10)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=relay) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    broker_breaker.reset()
    assert len(sent) == 2 * len(events)
    assert len(set(sent)) == len(sent)
    assert set(EventDelivery.objects.values_list("publish_count", flat=True)) == {1}


@pytest.mark.django_db
def test_the_relay_backs_off_a_delivery_it_already_re_sent():
    deadline = relay_backoff(0)
    assert relay_backoff(1) == 2 * deadline
    assert relay_backoff(10) == 16 * deadline


@pytest.mark.django_db
def test_reconcile_exits_non_zero_when_a_delivery_is_lost(alice, capsys):
    event = emit_probe(alice.tenant)
    call_command("reconcile")  # in flight: fine
    EventDelivery.objects.filter(event=event).update(due_at=timezone.now() - timedelta(hours=1))
    with pytest.raises(CommandError, match="2 deliveries lost"):
        call_command("reconcile")
    assert "overdue: 2" in capsys.readouterr().out.replace(" ", "").replace("overdue:", "overdue: ")


@pytest.mark.django_db
def test_a_failed_delivery_without_a_review_row_counts_as_lost(alice):
    event = emit_probe(alice.tenant)
    EventDelivery.objects.filter(event=event, handler="tests.effect").update(
        status=DeliveryStatus.FAILED
    )
    report = reconcile()
    assert report.failed_without_review == 1 and not report.ok


@pytest.mark.django_db
def test_reconcile_is_scoped_to_a_tenant(alice, bob):
    emit_probe(alice.tenant)
    assert reconcile(tenant_id=bob.tenant.pk).deliveries == 0
    assert reconcile(tenant_id=alice.tenant.pk).deliveries == 2


@pytest.mark.django_db(transaction=True)
def test_relay_passes_during_a_broker_outage_do_not_inflate_the_backoff(
    alice, own_broker, settings
):
    broker_breaker.trip()
    try:
        event = emit_probe(alice.tenant)
    finally:
        broker_breaker.reset()
    EventDelivery.objects.filter(event=event).update(due_at=timezone.now() - timedelta(minutes=1))
    own_broker.server.stop()
    try:
        for _ in range(3):
            assert relay_due_deliveries() == 0
            EventDelivery.objects.filter(event=event).update(
                due_at=timezone.now() - timedelta(seconds=1)
            )
        rows = list(EventDelivery.objects.filter(event=event))
        assert {row.publish_count for row in rows} == {0}  # nothing left: nothing counted
    finally:
        own_broker.server.start()
        broker_breaker.reset()
    assert relay_due_deliveries() == 2  # the broker is back: sent, counted once
    assert set(
        EventDelivery.objects.filter(event=event).values_list("publish_count", flat=True)
    ) == {1}
