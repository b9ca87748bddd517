"""Workers keep their PostgreSQL connections across tasks (CELERY_DB_REUSE_MAX).

Celery closes Django's connection after every task unless told otherwise; each
task would then open a new PostgreSQL session (measured: ~5x slower).
"""

from __future__ import annotations

import pytest
from django.db import connection

from tests.support.pipeline import assert_pipeline_settled, emit_probe

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_hundred_deliveries_reuse_a_handful_of_database_sessions(live_worker, alice):
    for index in range(100):
        emit_probe(alice.tenant, aggregate_id=f"session-{index}")
    assert_pipeline_settled(timeout=60)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), count(DISTINCT backend_pid) FROM test_effect")
        effects, sessions = cursor.fetchone()
    assert effects == 200  # two subscribers per event
    # Two pool processes; a session per process (a reconnect or two is tolerated).
    assert sessions <= 2 * live_worker.concurrency, f"{sessions} sessions for {effects} deliveries"
