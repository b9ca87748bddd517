"""Keep the session worker from racing a transactional test's flush.

A transactional test ends with ``TRUNCATE`` of every table. If the session worker
is still applying deliveries the test published (and did not wait for), its
transaction and the TRUNCATE lock tables in different orders and PostgreSQL
aborts one of them as a deadlock: the flush fails and the next test sees the
previous test's rows. So, before the flush: drop the messages still queued, wait
for other sessions on the test database to finish their transactions, and end
the ones that do not.
"""

from __future__ import annotations

import logging
import time

from django.db import connection

from config.celery import app as celery_app

logger = logging.getLogger(__name__)

_BUSY_SESSIONS = """
    SELECT pid FROM pg_stat_activity
    WHERE datname = current_database()
      AND pid <> pg_backend_pid()
      AND backend_type = 'client backend'
      AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)')
"""


def busy_sessions() -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(_BUSY_SESSIONS)
        return [row[0] for row in cursor.fetchall()]


def purge_task_queues() -> int:
    """Drop every message still waiting in the test broker's task queues."""
    try:
        return int(celery_app.control.purge() or 0)
    except Exception as exc:  # a test may have stopped the broker on purpose
        logger.warning("could not purge the test broker before the flush: %s", exc)
        return 0


def quiesce_database(timeout: float = 10.0) -> list[int]:
    """Wait for other sessions' transactions to end; terminate what is left.

    Returns the pids that had to be terminated (normally none).
    """
    purge_task_queues()
    deadline = time.monotonic() + timeout
    while (busy := busy_sessions()) and time.monotonic() < deadline:
        time.sleep(0.05)
    if busy:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", [busy])
    return busy


def terminate_other_sessions() -> None:
    """End every other session on the test database so it can be dropped."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'"
        )
