"""One domain error base: the API renders it, a task that meets one does not retry."""

from __future__ import annotations

import pickle

import pytest

from bookings.errors import BookingError
from pms.api.errors import json_exception_handler
from pms.errors import DomainError
from pms.models import FailedTask
from pms.pipeline.redis_client import redis_client
from testkit.processes import wait_until
from tests.support.fault_handlers import control_key
from tests.support.pipeline import assert_pipeline_settled, emit_probe


def test_the_api_renders_a_domain_error_with_its_code_message_and_field():
    response = json_exception_handler(
        BookingError("too_few_nights", "At least 3 nights.", field="check_out"), {}
    )
    assert response is not None and response.status_code == 400
    assert response.data == {
        "error": {
            "code": "too_few_nights",
            "message": "At least 3 nights.",
            "fields": {"check_out": ["At least 3 nights."]},
        }
    }
    conflict = json_exception_handler(DomainError("unavailable", "Taken."), {})
    assert conflict is not None and conflict.status_code == 409
    assert conflict.data == {"error": {"code": "unavailable", "message": "Taken."}}


def test_a_domain_error_survives_pickling_with_its_code_message_and_field():
    copy = pickle.loads(pickle.dumps(BookingError("past_date", "In the past.", field="check_in")))
    assert type(copy) is BookingError
    assert (copy.code, copy.message, copy.field, str(copy)) == (
        "past_date",
        "In the past.",
        "check_in",
        "In the past.",
    )


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_domain_error_in_a_handler_goes_to_review_without_retrying(live_worker, alice):
    event = emit_probe(alice.tenant, mode="refused")
    redis_client().set(control_key("fault", event.id), 1, ex=300)
    failed = wait_until(
        lambda: FailedTask.objects.filter(event=event).first(), 20, what="FailedTask"
    )
    assert failed.attempts == 1
    assert failed.exception_class == "pms.errors.DomainError"
    assert "simulated refusal" in failed.exception_message
    assert_pipeline_settled()
