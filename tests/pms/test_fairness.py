"""Fair admission of bulk work: one tenant's flood cannot starve another's work."""

from __future__ import annotations

from datetime import timedelta
from typing import cast

import pytest
from django.utils import timezone

from pms.models import FairWorkItem
from pms.pipeline.fairness import fair_dispatch, fair_item_finished, fair_submit
from pms.pipeline.redis_client import redis_client
from testkit.processes import wait_until
from tests.support.pipeline import assert_pipeline_settled

CAP = 4  # FAIR_INFLIGHT_PER_TENANT's default


def _submit(tenant, count, prefix):
    return [
        fair_submit(
            tenant_id=tenant.pk,
            scope="sync",
            task_name="tests.fair_work",
            args=[f"{prefix}{i}"],
            queue="bulk",
        )
        for i in range(count)
    ]


def _inflight(tenant):
    return FairWorkItem.objects.filter(
        tenant=tenant, dispatched_at__isnull=False, finished_at__isnull=True
    ).count()


@pytest.mark.django_db
def test_each_tenant_gets_at_most_its_share_in_flight(alice, bob):
    _submit(alice.tenant, 50, "a")
    _submit(bob.tenant, 2, "b")
    fair_dispatch()
    assert (_inflight(alice.tenant), _inflight(bob.tenant)) == (CAP, 2)
    fair_dispatch()  # nothing finished: nothing more is admitted
    assert _inflight(alice.tenant) == CAP


@pytest.mark.django_db
def test_a_finished_item_frees_its_tenants_slot_oldest_first(alice):
    items = _submit(alice.tenant, 10, "a")
    fair_dispatch()
    fair_item_finished(items[0].pk)
    fair_dispatch()
    dispatched = list(
        FairWorkItem.objects.filter(dispatched_at__isnull=False)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    assert dispatched == [item.pk for item in items[: CAP + 1]]


@pytest.mark.django_db
def test_an_item_lost_in_flight_is_admitted_again_after_the_deadline(alice, settings):
    items = _submit(alice.tenant, 1, "a")
    fair_dispatch()
    FairWorkItem.objects.update(
        dispatched_at=timezone.now() - timedelta(seconds=settings.FAIR_INFLIGHT_DEADLINE + 1)
    )
    fair_dispatch()
    assert FairWorkItem.objects.get(pk=items[0].pk).dispatch_count == 2


@pytest.mark.django_db
def test_the_same_work_waiting_twice_is_submitted_once(alice):
    first = fair_submit(
        tenant_id=alice.tenant.pk,
        scope="sync",
        task_name="tests.fair_work",
        args=["x"],
        queue="bulk",
        dedupe_key="import:1",
    )
    second = fair_submit(
        tenant_id=alice.tenant.pk,
        scope="sync",
        task_name="tests.fair_work",
        args=["x"],
        queue="bulk",
        dedupe_key="import:1",
    )
    assert first is not None and second is None


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_tenants_single_item_overtakes_another_tenants_backlog(live_worker, alice, bob):
    client = redis_client()
    client.delete("pms-test:fair-order")
    _submit(alice.tenant, 40, "a")
    finished_before_b = client.llen("pms-test:fair-order")
    _submit(bob.tenant, 1, "b")
    wait_until(lambda: client.llen("pms-test:fair-order") >= 41, 90, what="all fair work to finish")
    # Without decode_responses the client answers bytes (its stubs allow str too).
    labels = cast(list[bytes], client.lrange("pms-test:fair-order", 0, -1))
    order = [label.decode() for label in labels]
    # Without fair admission b0 would wait for every A item still queued (it would
    # finish last, 41st). With it, b0 waits at most for: the CAP items of A admitted
    # just before it arrived, the two the worker's processes were running, and up to
    # two finishing before the next dispatch pass admits it.
    waited_for = order.index("b0") - finished_before_b
    assert 40 - finished_before_b > 4 * CAP, "A's backlog was already gone: nothing to measure"
    assert waited_for <= CAP + 4, (finished_before_b, order)
    assert sorted(order) == sorted([f"a{i}" for i in range(40)] + ["b0"])
    assert FairWorkItem.objects.filter(finished_at__isnull=True).count() == 0
    assert_pipeline_settled()
