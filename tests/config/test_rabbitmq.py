"""RabbitMQ as the broker: quorum queues, publisher confirms, countdown retries, depth.

Runs whenever a RabbitMQ answers (``RABBITMQ_TEST_URL``, else ``TEST_BROKER_URL``
when it is RabbitMQ, else ``amqp://guest:guest@127.0.0.1:5672/pms_test``), also in a
Redis run: the module points this process at RabbitMQ and starts its own worker
there, on the session's test database. Skipped, with the reason, when RabbitMQ is
unreachable or the vhost is missing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from amqp.exceptions import NotFound, PreconditionFailed
from django.db import transaction
from kombu import Connection

from config.celery import app as celery_app
from config.queues import QUEUE_NAMES, QUORUM
from pms.models import EventDelivery
from pms.pipeline import waiting
from pms.pipeline.broker_stats import queue_depths
from pms.pipeline.publishing import delivery_task_id
from pms.pipeline.redis_client import redis_client
from pms.tasks import probe_echo
from testkit.processes import wait_until
from tests.factories import PASSWORD
from tests.support.broker import celery_on_broker, rabbitmq_test_url
from tests.support.fault_handlers import control_key
from tests.support.pipeline import assert_pipeline_settled, effects, emit_probe
from tests.support.servers import ARTIFACTS, CeleryWorker, log_count

URL = rabbitmq_test_url()

pytestmark = [
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.needs("rabbitmq"),
]


@pytest.fixture(scope="module")
def rabbit(worker_env: dict[str, str]) -> Iterator[CeleryWorker]:
    """This process and one worker on every queue, both on RabbitMQ."""
    env = {
        **worker_env,
        "CELERY_BROKER_URL": URL,
        # Enough retries that one with a non-zero countdown surely happens (full jitter).
        "TASK_MAX_RETRIES": "12",
        "TASK_RETRY_BACKOFF": "2",
        "TASK_RETRY_BACKOFF_MAX": "3",
    }
    with celery_on_broker(celery_app, URL):
        celery_app.control.purge()
        worker = CeleryWorker(queues=sorted(QUEUE_NAMES), env=env, concurrency=2, name="rabbit")
        worker.start(celery_app)
        try:
            yield worker
        finally:
            worker.stop()


def _declare(queue: str, arguments: dict[str, str]) -> None:
    with Connection(URL) as connection:
        channel: Any = connection.channel()  # py-amqp's channel
        channel.queue_declare(queue, durable=True, auto_delete=False, arguments=arguments)


def test_queues_are_quorum_queues_and_publishes_are_confirmed(rabbit: CeleryWorker) -> None:
    for queue in sorted(QUEUE_NAMES):
        _declare(queue, dict(QUORUM))  # equivalent: accepted
        with pytest.raises(PreconditionFailed, match="inequivalent arg 'x-queue-type'"):
            _declare(queue, {"x-queue-type": "classic"})
    assert celery_app.conf.broker_transport_options == {"confirm_publish": True}
    assert "visibility_timeout" not in celery_app.conf.broker_transport_options
    with celery_app.connection_for_write() as connection:
        producer = connection.Producer()
        # Confirmed: the broker's refusal reaches the publisher. Unconfirmed, this
        # publish would return and the message vanish without a word.
        with pytest.raises(NotFound):
            producer.publish({"x": 1}, exchange="pms-no-such-exchange", routing_key="x")
    # Quorum queues have no global QoS: the worker chose per-consumer prefetch.
    assert log_count(rabbit.logfile, "Global QoS is disabled") >= 1
    assert log_count(rabbit.logfile, "native delayed delivery do not support") == 0


def test_a_countdown_waits_in_the_broker_not_in_the_worker(rabbit: CeleryWorker) -> None:
    began = time.monotonic()
    result = probe_echo.apply_async(kwargs={"token": "later"}, countdown=3)
    (default,) = queue_depths(queues=["default"])
    assert default.depth == 0  # in the delay queues, not handed to the worker yet
    answer = result.get(timeout=30)
    assert time.monotonic() - began >= 2.5
    assert answer["token"] == "later"
    # Native delayed delivery: the routing key carries the delay bits, then the queue.
    assert answer["queue"].startswith("0.0.0.") and answer["queue"].endswith(".default")


def test_a_delivery_retried_with_a_countdown_completes(rabbit: CeleryWorker, alice: Any) -> None:
    client = redis_client()
    with transaction.atomic():  # published on commit: after the fault is switched on
        event = emit_probe(alice.tenant, mode="transient")
        client.set(control_key("fault", event.id), 1, ex=300)
    task_id = delivery_task_id(event.id, "tests.effect")

    def retried_with_a_countdown() -> bool:
        # Any worker on this broker may have run it (the session worker too, when
        # TEST_BROKER_URL is this RabbitMQ); the task id is unique to this event.
        return any(
            task_id in line and "retry: Retry in" in line and "Retry in 0s" not in line
            for log in ARTIFACTS.glob("worker-*.log")
            for line in log.read_text(errors="replace").splitlines()
        )

    wait_until(retried_with_a_countdown, 60, what="a retry with a non-zero countdown")
    client.delete(control_key("fault", event.id))
    wait_until(lambda: effects(event) == 1, 60, what="the retried delivery to apply")
    delivery = EventDelivery.objects.get(event=event, handler="tests.effect")
    assert delivery.status == "done"
    assert_pipeline_settled()


def test_depth_consumers_and_oldest_age_are_reported(
    rabbit: CeleryWorker, client: Any, superuser: Any
) -> None:
    queue, probes = "bulk", 5
    waiting.forget([queue])
    # A message that left without a worker receiving it (purged, lost with the broker):
    # older than everything waiting, so it is not the oldest waiting message.
    redis_client().zadd(waiting.waiting_key(queue), {"lost-message": time.time() - 3600})
    # Every worker on this broker (the session worker too, when TEST_BROKER_URL is it).
    celery_app.control.cancel_consumer(queue, reply=True)
    try:
        for index in range(probes):
            probe_echo.apply_async(kwargs={"token": f"t{index}"}, queue=queue)
        time.sleep(1.2)
        (stats,) = queue_depths(queues=[queue])
        assert stats.depth == probes and stats.broker_consumers == 0
        assert stats.age_estimated
        assert stats.oldest_age_seconds is not None and 1.0 <= stats.oldest_age_seconds < 30

        client.login(username=superuser.username, password=PASSWORD)
        page = client.get("/admin/pms/queuesample/")
        row = next(q for q in page.context["overview"].queues if q.name == queue)
        assert row.depth == probes and row.consumers == 0 and row.has_work_and_no_consumer
        assert "&asymp;" in page.content.decode()
    finally:
        celery_app.control.add_consumer(queue, reply=True)
    wait_until(lambda: queue_depths(queues=[queue])[0].depth == 0, 30, what="bulk to drain")
    # Every probe was received and the queue was seen empty: the log is empty (the lost
    # message's entry dropped), and the age is gone.
    wait_until(
        lambda: redis_client().zcard(waiting.waiting_key(queue)) == 0, 10, what="the log to empty"
    )
    assert queue_depths(queues=[queue])[0].oldest_age_seconds is None
