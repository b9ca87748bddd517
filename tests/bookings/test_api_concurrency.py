"""Parallel guests racing for the same nights: exactly one wins, the rest get a clear 409."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
import uuid
from datetime import timedelta

import pytest

from bookings.models import Booking

pytestmark = pytest.mark.django_db(transaction=True)

PARALLEL = 8


def _post(url: str, body: dict, key: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Idempotency-Key": key},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_parallel_requests_for_overlapping_dates_make_one_booking(live_server, alice, future):
    url = f"{live_server.url}/api/v1/bookings/"
    results: list[tuple[int, dict]] = []
    barrier = threading.Barrier(PARALLEL)

    def guest(index: int) -> None:
        start = future + timedelta(days=index % 3)  # all overlap each other
        body = {
            "property": str(alice.property.public_id),
            "check_in": start.isoformat(),
            "check_out": (start + timedelta(days=4)).isoformat(),
            "guests": 2,
            "guest": {"name": f"Guest {index}", "email": f"g{index}@example.test"},
        }
        barrier.wait()
        results.append(_post(url, body, key=str(uuid.uuid4())))

    threads = [threading.Thread(target=guest, args=(i,)) for i in range(PARALLEL)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    statuses = sorted(status for status, _ in results)
    assert statuses == [201] + [409] * (PARALLEL - 1), results
    refusals = [body["error"] for status, body in results if status == 409]
    assert {error["code"] for error in refusals} == {"unavailable"}
    assert all(error["message"] for error in refusals)
    assert Booking.objects.count() == 1
