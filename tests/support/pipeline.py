"""Helpers for tests that watch events travel through the real pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection, transaction

from pms.models import DomainEvent
from pms.pipeline.publishing import emit_event
from pms.pipeline.reconcile import ReconcileReport, reconcile_until_settled
from tests.support.fault_handlers import PROBE_EVENT


def emit_probe(tenant: Any, mode: str = "ok", aggregate_id: str = "probe-1") -> DomainEvent:
    with transaction.atomic():
        return emit_event(
            tenant_id=tenant.pk,
            aggregate_type="probe",
            aggregate_id=aggregate_id,
            event_type=PROBE_EVENT,
            payload={"mode": mode},
            actor="tests",
        )


def effects(event: DomainEvent, handler: str = "tests.effect") -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM test_effect WHERE event_id = %s AND handler = %s",
            [str(event.id), handler],
        )
        return int(cursor.fetchone()[0])


def duplicated_effects() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM (SELECT 1 FROM test_effect GROUP BY event_id, handler "
            "HAVING count(*) > 1) AS twice"
        )
        return int(cursor.fetchone()[0])


def assert_pipeline_settled(timeout: float = 45) -> ReconcileReport:
    """The invariant, checked at the end of every pipeline test."""
    report = reconcile_until_settled(timeout=timeout)
    assert report.settled, report.as_dict()
    assert duplicated_effects() == 0
    return report


@contextmanager
def deliveries_refuse_updates(when: str) -> Iterator[None]:
    """PostgreSQL refuses an UPDATE of an event delivery matching ``when`` (a trigger's
    WHEN condition over OLD and NEW): a database failing at exactly that statement."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE OR REPLACE FUNCTION test_refuse_update() RETURNS trigger LANGUAGE plpgsql "
            "AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER test_refuse_update BEFORE UPDATE ON pms_eventdelivery "
            f"FOR EACH ROW WHEN ({when}) EXECUTE FUNCTION test_refuse_update()"
        )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER IF EXISTS test_refuse_update ON pms_eventdelivery")
