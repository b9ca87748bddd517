"""insert_unless_exists: one INSERT ... ON CONFLICT DO NOTHING, the new key or nothing."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from automation.models import OutboundMessage
from automation.services import outbound_message_queue
from pms.db_inserts import insert_unless_exists

pytestmark = pytest.mark.django_db


def _message(alice, key: str, body: str = "Hello") -> OutboundMessage:
    return OutboundMessage(
        tenant=alice.tenant, idempotency_key=key, kind="test", recipient="g@example.test", body=body
    )


def test_a_new_key_is_inserted_with_its_defaults_and_an_existing_one_is_left_alone(alice):
    first = _message(alice, "k-1")
    assert insert_unless_exists(first, unique_field="idempotency_key") is True
    stored = OutboundMessage.objects.get(pk=first.pk)
    assert stored.body == "Hello" and stored.created_at is not None and stored.attempts == 0
    assert not first._state.adding

    again = _message(alice, "k-1", body="Other")
    assert insert_unless_exists(again, unique_field="idempotency_key") is False
    assert again.pk is None
    assert OutboundMessage.objects.get(idempotency_key="k-1").body == "Hello"
    assert OutboundMessage.objects.count() == 1


def test_queueing_a_message_inside_a_transaction_is_one_statement(alice):
    fields = {
        "tenant_id": alice.tenant.pk,
        "idempotency_key": "guest:1",
        "kind": "test",
        "recipient": "g@example.test",
        "subject": "Hi",
        "body": "Welcome",
    }
    with CaptureQueriesContext(connection) as queries:
        message, created = outbound_message_queue(**fields)
    assert created and message.pk
    inserts = [
        q["sql"] for q in queries.captured_queries if "automation_outboundmessage" in q["sql"]
    ]
    assert len(inserts) == 1 and "ON CONFLICT" in inserts[0], inserts
    assert not any("SAVEPOINT" in q["sql"] for q in queries.captured_queries)

    same, created = outbound_message_queue(**fields)
    assert not created and same.pk == message.pk
