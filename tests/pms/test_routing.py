"""Every declared queue is consumed by a real worker."""

from __future__ import annotations

import uuid

import pytest

from config.queues import QUEUE_NAMES
from pms.tasks import probe_echo

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("queue", sorted(QUEUE_NAMES))
def test_a_task_routed_to_each_queue_is_consumed(live_worker, queue) -> None:
    token = uuid.uuid4().hex
    result = probe_echo.apply_async(kwargs={"token": token}, queue=queue)
    answer = result.get(timeout=20)
    assert answer == {
        "token": token,
        "hostname": live_worker.name,
        "queue": queue,
        "tenant_id": None,
    }
