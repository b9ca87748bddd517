"""Fair admission of bulk work: one tenant's flood cannot starve another's work."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import cast

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from pms.models import EndpointCircuit, FairWorkItem
from pms.pipeline.endpoints import circuit_record, endpoint_lane
from pms.pipeline.fair_summary import fair_work_summary
from pms.pipeline.fairness import (
    ADVISORY_LOCK_ID,
    FAIR_DISPATCH_TASK,
    KICK_KEY,
    TENANT_KICK_KEY,
    TENANT_PASS_KEY,
    TENANT_PASS_MS,
    fair_dispatch,
    fair_item_finished,
    fair_items_purge,
    fair_submit,
    free_slot_on_return,
    kick_dispatcher,
    scope_cap,
    without_open_work,
)
from pms.pipeline.log_context import NO_TENANT
from pms.pipeline.redis_client import redis_client
from testkit.processes import wait_until
from tests.support.broker import queued_messages
from tests.support.pipeline import assert_pipeline_settled

CAP = 4  # FAIR_INFLIGHT_PER_TENANT's default
SCOPE = "tests"  # a kind of work with no cap of its own: the default applies


def _submit(tenant, count, prefix, *, scope=SCOPE, lane="", queue="bulk"):
    return [
        fair_submit(
            tenant_id=tenant.pk,
            scope=scope,
            task_name="tests.fair_work",
            args=[f"{prefix}{i}"],
            queue=queue,
            lane=lane,
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
    fair_dispatch()  # nothing finished: nothing more is admitted, nothing admitted twice
    assert _inflight(alice.tenant) == CAP
    assert set(FairWorkItem.objects.values_list("dispatch_count", flat=True)) == {0, 1}


@pytest.mark.django_db
def test_new_work_of_a_tenant_with_room_is_admitted_when_it_commits(
    bob, django_capture_on_commit_callbacks
):
    redis_client().delete(f"{TENANT_PASS_KEY}{bob.tenant.pk}")
    with django_capture_on_commit_callbacks() as callbacks:
        _submit(bob.tenant, 2, "b")
    assert _inflight(bob.tenant) == 0
    callbacks[0]()  # what the submitting transaction's commit runs: no dispatcher task
    assert _inflight(bob.tenant) == 2


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
    # The last task writes its label, then returns: its item is marked finished just
    # after (the task_returned signal). Every item must end finished, soon.
    wait_until(
        lambda: not FairWorkItem.objects.filter(finished_at__isnull=True).exists(),
        15,
        what="every fair work item marked finished",
    )
    assert_pipeline_settled()


@pytest.mark.django_db
def test_admitted_items_are_sent_with_their_tenant_and_item(
    alice, own_broker, django_capture_on_commit_callbacks
):
    fixed = fair_submit(
        tenant_id=alice.tenant.pk,
        scope=SCOPE,
        task_name="tests.fair_work",
        args=["fixed"],
        queue="bulk",
        task_id="fair-fixed-id",
    )
    (plain,) = _submit(alice.tenant, 1, "plain")
    with django_capture_on_commit_callbacks(execute=True):
        assert fair_dispatch() == 2
    messages = {m.args[0]: m for m in queued_messages(own_broker.url)}
    assert set(messages) == {"fixed", "plain0"}
    for label, item in (("fixed", fixed), ("plain0", plain)):
        assert item is not None
        message = messages[label]
        assert (message.task, message.queue) == ("tests.fair_work", "bulk")
        assert message.headers["tenant_id"] == alice.tenant.pk
        assert message.headers["fair_item_id"] == item.pk
    assert messages["fixed"].task_id == "fair-fixed-id"
    assert str(uuid.UUID(messages["plain0"].task_id)) == messages["plain0"].task_id  # Celery's


@pytest.mark.django_db
def test_a_tenant_that_just_had_a_pass_gets_one_queued_pass_for_its_next_submits(
    bob, own_broker, django_capture_on_commit_callbacks
):
    client = redis_client()
    pass_key, kick_key = f"{TENANT_PASS_KEY}{bob.tenant.pk}", f"{TENANT_KICK_KEY}{bob.tenant.pk}"
    client.set(pass_key, 1, px=60_000)  # a pass here has just run
    client.delete(kick_key)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            _submit(bob.tenant, 3, "b")
        assert _inflight(bob.tenant) == 0  # not admitted here: by the queued pass
        (queued,) = queued_messages(own_broker.url)
        assert (queued.task, queued.args) == (FAIR_DISPATCH_TASK, [bob.tenant.pk])
        assert queued.headers["tenant_id"] == bob.tenant.pk
        eta = datetime.fromisoformat(queued.headers["eta"])
        assert eta <= timezone.now() + timedelta(milliseconds=TENANT_PASS_MS)  # the interval
        assert 0 < client.pttl(kick_key) <= TENANT_PASS_MS
    finally:
        client.delete(pass_key, kick_key)


@pytest.mark.django_db
def test_a_pass_on_submit_holds_off_the_next_for_half_a_second(
    bob, own_broker, django_capture_on_commit_callbacks
):
    client = redis_client()
    pass_key = f"{TENANT_PASS_KEY}{bob.tenant.pk}"
    client.delete(pass_key)
    with django_capture_on_commit_callbacks(execute=True):
        _submit(bob.tenant, 1, "b")
    assert _inflight(bob.tenant) == 1
    assert 0 < client.pttl(pass_key) <= TENANT_PASS_MS
    assert [m.task for m in queued_messages(own_broker.url)] == ["tests.fair_work"]
    client.delete(pass_key)


@pytest.mark.django_db
def test_kicks_in_a_burst_queue_one_dispatch_pass(own_broker):
    client = redis_client()
    client.delete(KICK_KEY)
    for _ in range(3):
        kick_dispatcher()
    (queued,) = queued_messages(own_broker.url)
    assert queued.task == FAIR_DISPATCH_TASK and queued.args == []
    assert queued.headers["tenant_id"] == NO_TENANT  # housekeeping: no tenant's logs
    assert 0 < client.ttl(KICK_KEY) <= 2
    fair_dispatch()  # the pass ran: the next kick queues another
    kick_dispatcher()
    assert len(queued_messages(own_broker.url)) == 2
    client.delete(KICK_KEY)


@pytest.mark.django_db
def test_a_finished_item_is_finished_once_and_its_return_frees_the_slot(alice, bob):
    items = _submit(alice.tenant, CAP + 2, "a")
    fair_dispatch()
    first, second = items[0], items[1]
    before = timezone.now()
    fair_item_finished(first.pk)
    finished_at = FairWorkItem.objects.get(pk=first.pk).finished_at
    assert finished_at is not None and finished_at >= before
    assert _inflight(alice.tenant) == CAP  # the next item took the slot at once
    fair_item_finished(first.pk)  # a second report changes nothing
    assert FairWorkItem.objects.get(pk=first.pk).finished_at == finished_at
    assert _inflight(alice.tenant) == CAP
    fair_item_finished(None)
    (waiting,) = _submit(bob.tenant, 1, "b")  # bob's item waits for a pass of its own
    fair_item_finished(items[2].pk)
    assert FairWorkItem.objects.get(pk=waiting.pk).dispatched_at is None  # alice's pass only

    class Returned:  # a task as task_base.task_returned sends it
        request = type("Request", (), {"fair_item_id": second.pk})()

    free_slot_on_return(Returned(), status="SUCCESS")
    assert FairWorkItem.objects.get(pk=second.pk).finished_at is not None
    assert FairWorkItem.objects.filter(
        tenant=alice.tenant, dispatched_at__isnull=False
    ).count() == (CAP + 2)
    Returned.request = type("Request", (), {})()
    free_slot_on_return(Returned(), status="SUCCESS")  # not fair work: nothing to free


@pytest.mark.django_db
def test_finished_items_are_purged_after_two_days(alice):
    old, recent, running = _submit(alice.tenant, 3, "p")
    FairWorkItem.objects.filter(pk=old.pk).update(
        finished_at=timezone.now() - timedelta(days=2, minutes=1)
    )
    FairWorkItem.objects.filter(pk=recent.pk).update(
        finished_at=timezone.now() - timedelta(days=1, hours=23)
    )
    assert fair_items_purge() == 1
    assert set(FairWorkItem.objects.values_list("pk", flat=True)) == {recent.pk, running.pk}
    assert fair_items_purge(older_than=timedelta(hours=1)) == 1


@pytest.mark.django_db
def test_a_sweep_leaves_out_rows_whose_work_still_waits(alice, bob):
    from tenants.models import Tenant

    for world in (alice, bob):
        fair_submit(
            tenant_id=world.tenant.pk,
            scope="sync",
            task_name="tests.fair_work",
            args=[world.tenant.pk],
            queue="bulk",
            dedupe_key=f"tenant:{world.tenant.pk}",
        )
    FairWorkItem.objects.filter(tenant=bob.tenant).update(finished_at=timezone.now())
    tenants = Tenant.objects.filter(pk__in=[alice.tenant.pk, bob.tenant.pk])
    left = without_open_work(tenants, scope="sync", key_prefix="tenant:")
    assert list(left) == [bob.tenant]
    assert set(without_open_work(tenants, scope="webhooks", key_prefix="tenant:")) == set(tenants)
    assert set(without_open_work(tenants, scope="sync", key_prefix="other:")) == set(tenants)


@pytest.fixture
def redis_down(settings):
    """The pipeline's Redis unreachable (a closed port), for this test only."""
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    redis_client.cache_clear()
    yield
    redis_client.cache_clear()


@pytest.mark.django_db
def test_without_redis_new_work_waits_for_the_periodic_pass(
    bob, own_broker, redis_down, django_capture_on_commit_callbacks, caplog
):
    with django_capture_on_commit_callbacks(execute=True):
        _submit(bob.tenant, 1, "b")  # the submitting transaction commits: never an error
    kick_dispatcher()
    assert _inflight(bob.tenant) == 0 and FairWorkItem.objects.count() == 1
    assert queued_messages(own_broker.url) == []
    assert f"could not admit tenant {bob.tenant.pk}'s new work here" in caplog.messages
    assert (
        caplog.messages.count("could not kick the fair dispatcher; the periodic pass will run it")
        == 2
    )  # the failed admission's kick, and the kick itself
    warning = next(r for r in caplog.records if "new work here" in r.getMessage())
    assert warning.exc_info and warning.exc_info[0] is not None  # the cause, for the operator


# --- Lanes (remote endpoints) and their circuits -------------------------------------------

SLOW = "http://127.0.0.1:9"
FAST = "http://127.0.0.1:10"


def _submit_lane(tenant, count, lane, prefix="w"):
    return _submit(tenant, count, prefix, scope="webhooks", lane=lane, queue="outbound")


def _inflight_in(tenant, lane):
    return FairWorkItem.objects.filter(
        tenant=tenant, lane=lane, dispatched_at__isnull=False, finished_at__isnull=True
    ).count()


@pytest.mark.django_db
def test_a_lane_holds_at_most_its_cap_and_does_not_use_up_the_tenants_share(alice, settings):
    settings.FAIR_INFLIGHT_PER_ENDPOINT = 2
    _submit_lane(alice.tenant, 10, SLOW)  # oldest first: these would take the whole share
    _submit_lane(alice.tenant, 3, FAST, prefix="f")
    fair_dispatch()
    # The slow lane is capped at 2; the tenant's other two slots go to the fast lane.
    assert (_inflight_in(alice.tenant, SLOW), _inflight_in(alice.tenant, FAST)) == (2, 2)
    assert _inflight(alice.tenant) == CAP


@pytest.mark.django_db
def test_lanes_are_per_tenant_one_tenants_full_lane_never_holds_another(alice, bob, settings):
    settings.FAIR_INFLIGHT_PER_ENDPOINT = 1
    _submit_lane(alice.tenant, 5, SLOW)
    _submit_lane(bob.tenant, 5, SLOW, prefix="b")  # the same host: a shared channel manager
    fair_dispatch()
    assert (_inflight_in(alice.tenant, SLOW), _inflight_in(bob.tenant, SLOW)) == (1, 1)


@pytest.mark.django_db
def test_a_scope_can_have_its_own_cap(alice, settings):
    settings.FAIR_INFLIGHT_PER_SCOPE = {"messages": 7}
    _submit(alice.tenant, 10, "s")  # a scope without a cap of its own: the default
    for i in range(10):
        fair_submit(
            tenant_id=alice.tenant.pk,
            scope="messages",
            task_name="tests.fair_work",
            args=[i],
            queue="messaging_batch",
        )
    fair_dispatch()
    inflight = FairWorkItem.objects.filter(dispatched_at__isnull=False)
    assert inflight.filter(scope=SCOPE).count() == CAP
    assert inflight.filter(scope="messages").count() == 7


def test_imports_are_capped_at_two_per_tenant_unless_configured(settings):
    # Each import parses and writes a whole feed: the default keeps a tenant's flood of
    # them to two processes' worth of CPU.
    assert scope_cap("sync") == 2
    assert scope_cap("webhooks") == settings.FAIR_INFLIGHT_PER_TENANT


def _fail(tenant, lane, times, seconds=0.01):
    state = ""
    for _ in range(times):
        state = circuit_record(
            tenant_id=tenant.pk, lane=lane, failed=True, seconds=seconds, error="HTTP 503"
        )
    return state


@pytest.mark.django_db
def test_an_open_circuit_admits_nothing_then_one_probe_after_its_cooldown(alice, settings):
    settings.ENDPOINT_BREAKER_FAILURES = 3
    _submit_lane(alice.tenant, 6, SLOW)
    assert _fail(alice.tenant, SLOW, 2) == "closed"
    assert _fail(alice.tenant, SLOW, 1) == "open"
    fair_dispatch()
    assert _inflight_in(alice.tenant, SLOW) == 0  # deferred: waiting, not dropped
    summary = {load.scope: load for load in fair_work_summary([alice.tenant.pk])}
    assert (summary["webhooks"].deferred, summary["webhooks"].waiting) == (6, 0)

    circuit = EndpointCircuit.objects.get(tenant=alice.tenant, lane=SLOW)
    assert circuit.state == "open"
    circuit.open_until = timezone.now() - timedelta(seconds=1)  # the cooldown has passed
    circuit.save()
    assert circuit.state == "half-open"
    fair_dispatch()
    assert _inflight_in(alice.tenant, SLOW) == 1  # one probe
    fair_dispatch()
    assert _inflight_in(alice.tenant, SLOW) == 1


@pytest.mark.django_db
def test_a_failed_probe_reopens_for_twice_as_long_and_a_success_closes(alice, settings):
    settings.ENDPOINT_BREAKER_FAILURES = 2
    settings.ENDPOINT_BREAKER_COOLDOWN = 30
    _fail(alice.tenant, SLOW, 2)
    circuit = EndpointCircuit.objects.get(tenant=alice.tenant, lane=SLOW)
    assert circuit.open_until and circuit.last_failure_at
    assert circuit.open_until - circuit.last_failure_at == timedelta(seconds=30)
    EndpointCircuit.objects.filter(pk=circuit.pk).update(open_until=timezone.now())
    assert _fail(alice.tenant, SLOW, 1) == "open"  # the probe failed
    circuit.refresh_from_db()
    assert circuit.times_opened == 2
    assert circuit.open_until and circuit.last_failure_at
    assert circuit.open_until - circuit.last_failure_at == timedelta(seconds=60)
    circuit_record(tenant_id=alice.tenant.pk, lane=SLOW, failed=False, seconds=0.05)
    circuit.refresh_from_db()
    assert (circuit.state, circuit.consecutive_failures, circuit.times_opened) == ("closed", 0, 0)


@pytest.mark.django_db
def test_a_slow_answer_counts_against_the_circuit_even_when_it_succeeded(alice, settings):
    settings.ENDPOINT_BREAKER_FAILURES = 2
    settings.ENDPOINT_SLOW_CALL_SECONDS = 5
    for _ in range(2):
        state = circuit_record(tenant_id=alice.tenant.pk, lane=SLOW, failed=False, seconds=9.5)
    assert state == "open"
    assert "answered after 9.5 s" in EndpointCircuit.objects.get(lane=SLOW).last_error


@pytest.mark.django_db
def test_one_tenants_failures_never_open_another_tenants_circuit(alice, bob, settings):
    settings.ENDPOINT_BREAKER_FAILURES = 2
    settings.FAIR_INFLIGHT_PER_ENDPOINT = 2
    _fail(alice.tenant, SLOW, 5)
    _submit_lane(bob.tenant, 2, SLOW, prefix="b")
    fair_dispatch()
    assert _inflight_in(bob.tenant, SLOW) == 2


def test_the_lane_of_a_url_is_its_origin():
    assert endpoint_lane("https://Hooks.Example.com/a/b?x=1") == "https://hooks.example.com:443"
    assert endpoint_lane("http://127.0.0.1:8080/hook") == "http://127.0.0.1:8080"
    assert endpoint_lane("not a url") == ""


# --- When the broker or the dispatcher's lock fails ------------------------------------------


def _waiting_item(tenant, label):
    """An item written without the submit's after-commit pass: only a dispatch admits it."""
    return FairWorkItem.objects.create(
        tenant=tenant, scope=SCOPE, task_name="tests.fair_work", args=[label], queue="bulk"
    )


@pytest.mark.django_db
def test_work_the_broker_refuses_is_logged_with_what_sends_it_later(
    alice, bob, own_broker, caplog, django_capture_on_commit_callbacks
):
    client = redis_client()
    pass_key = f"{TENANT_PASS_KEY}{bob.tenant.pk}"
    kick_key = f"{TENANT_KICK_KEY}{bob.tenant.pk}"
    client.delete(KICK_KEY, kick_key)
    client.set(pass_key, 1, px=60_000)  # bob just had a pass: his next submit queues one
    (item,) = _submit(alice.tenant, 1, "a")
    own_broker.server.stop()
    try:
        kick_dispatcher()
        with django_capture_on_commit_callbacks(execute=True):
            _submit(bob.tenant, 1, "b")
        with django_capture_on_commit_callbacks(execute=True):
            assert fair_dispatch(tenant_id=alice.tenant.pk) == 1
    finally:
        own_broker.server.start()
        client.delete(KICK_KEY, pass_key, kick_key)
    refused = [m for m in caplog.messages if m.startswith("could not enqueue")]
    assert len(refused) == 3, caplog.messages
    kick, bobs_pass, work = refused
    assert kick.startswith(f"could not enqueue {FAIR_DISPATCH_TASK}[] (")
    assert kick.endswith("); the periodic dispatch pass will send it")
    assert bobs_pass.startswith(f"could not enqueue {FAIR_DISPATCH_TASK}[{bob.tenant.pk}] (")
    assert bobs_pass.endswith("); the periodic dispatch pass will send it")
    assert work.startswith("could not enqueue tests.fair_work['a0'] (")
    assert work.endswith("); re-admission after the in-flight deadline will send it")
    # The refused item stays admitted: the in-flight deadline admits it again.
    item.refresh_from_db()
    assert item.dispatched_at is not None and item.dispatch_count == 1


@pytest.mark.django_db
def test_a_submit_runs_a_pass_over_the_submitting_tenants_items_only(
    alice, bob, django_capture_on_commit_callbacks
):
    others = _waiting_item(bob.tenant, "b")
    redis_client().delete(f"{TENANT_PASS_KEY}{alice.tenant.pk}")
    with django_capture_on_commit_callbacks(execute=True):
        _submit(alice.tenant, 1, "a")
    assert _inflight(alice.tenant) == 1
    others.refresh_from_db()
    assert others.dispatched_at is None  # bob's waits for a pass of its own
    redis_client().delete(f"{TENANT_PASS_KEY}{alice.tenant.pk}")


@pytest.mark.django_db
def test_a_finished_item_admits_its_own_tenants_next_item_only_once(alice, bob):
    bobs = _waiting_item(bob.tenant, "b")  # older than alice's, and never admitted here
    first, second = _waiting_item(alice.tenant, "a0"), _waiting_item(alice.tenant, "a1")
    FairWorkItem.objects.filter(pk=first.pk).update(dispatched_at=timezone.now())
    fair_item_finished(first.pk)
    second.refresh_from_db()
    assert second.dispatched_at is not None  # alice's next, at once
    bobs.refresh_from_db()
    assert bobs.dispatched_at is None
    late = _waiting_item(alice.tenant, "a2")
    FairWorkItem.objects.filter(pk=second.pk).update(finished_at=timezone.now())
    fair_item_finished(first.pk)  # reported again (a task retried after it returned)
    late.refresh_from_db()
    assert late.dispatched_at is None  # an item already finished frees nothing twice


@pytest.mark.django_db
def test_a_pass_that_cannot_run_after_a_finish_leaves_it_to_the_dispatcher(
    alice, own_broker, caplog
):
    """The dispatcher's lock is held elsewhere past this session's lock timeout: the
    worker does not wait, it says why and kicks a dispatch pass."""
    first, second = _waiting_item(alice.tenant, "a0"), _waiting_item(alice.tenant, "a1")
    FairWorkItem.objects.filter(pk=first.pk).update(dispatched_at=timezone.now())
    redis_client().delete(KICK_KEY)
    holder = psycopg.connect(**connection.get_connection_params(), autocommit=True)
    try:
        holder.execute("SELECT pg_advisory_lock(%s)", [ADVISORY_LOCK_ID])
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '200ms'")
        fair_item_finished(first.pk)
    finally:
        holder.close()
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.finished_at is not None  # the finish itself is kept
    assert second.dispatched_at is None  # no pass ran here
    (warning,) = [r for r in caplog.records if "next work here" in r.getMessage()]
    assert warning.getMessage() == f"could not admit tenant {alice.tenant.pk}'s next work here"
    assert warning.levelname == "WARNING"
    assert warning.exc_info and warning.exc_info[0] is not None  # the traceback, logged
    (kicked,) = queued_messages(own_broker.url)
    assert kicked.task == FAIR_DISPATCH_TASK
    redis_client().delete(KICK_KEY)


@pytest.mark.django_db
def test_a_pass_sends_what_it_admits_oldest_first(
    alice, own_broker, settings, django_capture_on_commit_callbacks
):
    """Also an item admitted again after the in-flight deadline: an UPDATE moved its row
    to the end of the table, and it still goes before the younger ones."""
    stale, *_ = [_waiting_item(alice.tenant, f"a{i}") for i in range(3)]
    FairWorkItem.objects.filter(pk=stale.pk).update(
        dispatched_at=timezone.now() - timedelta(seconds=settings.FAIR_INFLIGHT_DEADLINE + 1),
        dispatch_count=1,
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert fair_dispatch(tenant_id=alice.tenant.pk) == 3
    assert [m.args for m in queued_messages(own_broker.url)] == [["a0"], ["a1"], ["a2"]]
