"""Workers keep their PostgreSQL connections across tasks (CELERY_DB_REUSE_MAX).

Celery closes Django's connection after every task unless told otherwise; each
task would then open a new PostgreSQL session (measured: ~5x slower).
"""

from __future__ import annotations

from typing import Any

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


def test_sessions_killed_between_tasks_cost_a_retry_not_a_delivery(live_worker, alice):
    """Busy workers skip Django's per-task ping (SELECT 1): a connection that died since
    the last task fails the next one, which retries on a new connection."""
    for index in range(20):
        emit_probe(alice.tenant, aggregate_id=f"warm-{index}")
    assert_pipeline_settled(timeout=60)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND pid IN (SELECT DISTINCT backend_pid FROM test_effect)"
        )
        assert cursor.fetchall(), "no worker session to kill"
    for index in range(20):
        emit_probe(alice.tenant, aggregate_id=f"after-{index}")
    report = assert_pipeline_settled(timeout=90)
    assert report.failed_without_review == 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), count(DISTINCT (event_id, handler)) FROM test_effect")
        effects, distinct = cursor.fetchone()
    assert effects == distinct == 80  # 40 events, two subscribers each, each once


def test_a_connection_used_a_moment_ago_is_not_pinged_but_an_idle_one_is(db):
    """What the prerun hook decides (pms.apps): skip the health check only when fresh."""
    import time

    from pms.apps import (
        HEALTH_CHECK_AFTER_IDLE_SECONDS,
        _note_db_connections_used,
        _refresh_db_connections,
    )

    # health_check_done is Django's flag; pms_task_ended_at is the hooks' own.
    conn: Any = connection
    conn.ensure_connection()
    _note_db_connections_used()
    _refresh_db_connections()
    assert conn.health_check_done is True  # a task ended just now: no SELECT 1

    conn.pms_task_ended_at = time.monotonic() - HEALTH_CHECK_AFTER_IDLE_SECONDS - 1
    _refresh_db_connections()
    assert conn.health_check_done is False  # idle: Django pings before the next query

    conn.pms_task_ended_at = None  # the last task met an error, or none ran yet
    _refresh_db_connections()
    assert conn.health_check_done is False
