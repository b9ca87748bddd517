"""Fuzzing the guest API in-process: no input may make a server error.

Schemathesis drives every operation of the app's own OpenAPI schema (/api/schema/)
through the WSGI app (no live server: the requests run inside the test's
transaction), with schema-valid and schema-violating (negative) data, and then as a
stateful run that follows the schema's links: book, then read, cancel, message and
report with the booking's own token. Hypothesis then feeds the input serializers
arbitrary JSON: whatever they accept fits the database columns.

The whole file sends at least 2,000 requests (``test_the_fuzz_run_was_big_enough``)
in about two minutes on two cores.
"""

from __future__ import annotations

import uuid
import zlib
from datetime import date, timedelta
from typing import Any

import pytest
import schemathesis
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, models, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from automation.api.serializers import MaintenanceReportSerializer
from bookings.api.serializers import (
    BookingCreateSerializer,
    DateRangeQuerySerializer,
    MessageCreateSerializer,
    QuoteQuerySerializer,
)
from config.wsgi import application
from pms.models import Guest
from tests.factories import PropertyFactory

PROPERTY_ID = uuid.UUID("0f0f0f0f-0000-4000-8000-000000000001")
REQUESTS: dict[str, int] = {"sent": 0}
EXAMPLES_PER_OPERATION = 140  # x 9 operations x 2 modes, plus the stateful run
STATEFUL_SCENARIOS = 100

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=EXAMPLES_PER_OPERATION,
)


@schema.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> Any:
    """Half the property ids are the real property's, so the database paths run too."""
    if "public_id" not in (path_parameters or {}):
        return st.just(path_parameters)
    return st.sampled_from([path_parameters, {**path_parameters, "public_id": str(PROPERTY_ID)}])


@schema.hook
def map_body(context: Any, body: Any) -> Any:
    """Half the booking bodies are aimed at the real property, with dates it can take, so
    bookings get made (and the stateful run follows their links); the rest stay as drawn."""
    if not (isinstance(body, dict) and "property" in body):
        return body
    seed = zlib.crc32(repr(sorted(body.items(), key=str)).encode())
    if seed % 2:
        return body
    check_in = date.today() + timedelta(days=1 + seed % 600)
    stay = {
        "property": str(PROPERTY_ID),
        "check_in": check_in.isoformat(),
        "check_out": (check_in + timedelta(days=1 + seed % 9)).isoformat(),
    }
    if isinstance(body.get("guests"), int):
        stay["guests"] = 1 + body["guests"] % 6
    return {**body, **stay}


@pytest.fixture
def in_process_app(db, settings):
    """The WSGI app as the test client runs it: same connection, same transaction."""
    settings.API_THROTTLE_ANON = settings.API_THROTTLE_GUEST_TOKEN = "1000000/min"
    settings.API_THROTTLE_BOOKING_CREATE = "1000000/min"
    # High enough that journeys get past booking; test_api_perimeter covers the limits.
    settings.API_BOOKINGS_PER_PROPERTY_PER_HOUR = 100_000
    settings.API_BOOKINGS_PER_GUEST_EMAIL_PER_DAY = 100_000
    PropertyFactory.create(public_id=PROPERTY_ID, max_guests=6, min_nights=1)
    cache.clear()
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)
    cache.clear()


FUZZ_SETTINGS = settings(
    deadline=None,
    derandomize=True,  # the same run every time: a red fuzz test is reproducible
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _count(case: Any, response: Any, stateful: bool = False) -> Any:
    REQUESTS["sent"] += 1
    if response.status_code == 201 and case.path == "/api/v1/bookings/":
        REQUESTS["booked"] = REQUESTS.get("booked", 0) + 1
    if stateful and response.status_code < 300 and "{reference}" in case.path:
        REQUESTS["opened_with_token"] = REQUESTS.get("opened_with_token", 0) + 1
    return response


@schema.parametrize()
@FUZZ_SETTINGS
def test_no_request_to_any_operation_is_a_server_error(case, in_process_app):
    response = _count(case, case.call())
    case.validate_response(response, checks=[not_a_server_error])
    assert response.status_code < 500, (case.method, case.formatted_path, response.text[:500])


class GuestJourney(schema.as_state_machine()):  # type: ignore[misc]
    """Each journey starts from the same database: what one journey booked is rolled back,
    so Hypothesis sees the same answers when it replays a journey (no flaky data)."""

    def setup(self) -> None:
        self._savepoint = transaction.savepoint()

    def teardown(self) -> None:
        transaction.savepoint_rollback(self._savepoint)
        cache.clear()

    def call(self, case: Any, **kwargs: Any) -> Any:
        return _count(case, case.call(**kwargs), stateful=True)

    def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
        case.validate_response(response, checks=[not_a_server_error])
        assert response.status_code < 500, (case.method, case.formatted_path, response.text[:500])


def test_stateful_guest_journeys_never_meet_a_server_error(in_process_app):
    GuestJourney.run(
        settings=settings(FUZZ_SETTINGS, max_examples=STATEFUL_SCENARIOS, stateful_step_count=8)
    )


# --- Hypothesis over the input serializers ------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
some_dates = st.one_of(
    st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)).map(date.isoformat),
    st.dates(
        min_value=date.today() - timedelta(days=5), max_value=date.today() + timedelta(days=800)
    ).map(date.isoformat),
    json_values,
)
guest_inputs = st.fixed_dictionaries(
    {},
    optional={
        "name": st.text(max_size=260) | json_values,
        "email": st.emails().map(lambda email: email[:300]) | st.text(max_size=300) | json_values,
        "phone": st.text(max_size=40) | json_values,
    },
)
booking_inputs = st.fixed_dictionaries(
    {},
    optional={
        "property": st.uuids().map(str) | json_values,
        "check_in": some_dates,
        "check_out": some_dates,
        "guests": st.integers(min_value=-5, max_value=40_000) | st.text(max_size=6) | json_values,
        "guest": guest_inputs | json_values,
    },
)


def _limit(name: str) -> int:
    field = Guest._meta.get_field(name)
    assert isinstance(field, models.Field) and field.max_length is not None
    return field.max_length


@given(booking_inputs)
@settings(max_examples=400, deadline=None, database=None)
def test_whatever_the_booking_serializer_accepts_fits_the_database(data):
    serializer = BookingCreateSerializer(data=data)
    if not serializer.is_valid():
        assert serializer.errors
        return
    valid = serializer.validated_data
    guest = valid["guest"]
    assert len(guest["name"]) <= _limit("name") and guest["name"].strip()
    assert len(guest["email"]) <= _limit("email") and len(guest["phone"]) <= _limit("phone")
    assert 1 <= valid["guests"] <= 50  # a PositiveSmallIntegerField holds it
    assert 0 <= (valid["check_out"] - valid["check_in"]).days <= 366 or (
        valid["check_out"] <= valid["check_in"]  # the service refuses it (invalid_dates)
    )
    for text in (guest["name"], guest["email"], guest["phone"]):
        assert "\x00" not in text


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "start": some_dates,
            "end": some_dates,
            "check_in": some_dates,
            "check_out": some_dates,
            "guests": json_values | st.integers(),
        },
    )
)
@settings(max_examples=200, deadline=None, database=None)
def test_query_serializers_accept_only_bounded_ranges(data):
    for serializer_class, start, end in (
        (DateRangeQuerySerializer, "start", "end"),
        (QuoteQuerySerializer, "check_in", "check_out"),
    ):
        serializer = serializer_class(data=data)
        if serializer.is_valid():
            valid = serializer.validated_data
            assert 0 < (valid[end] - valid[start]).days <= 366


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "body": st.text(max_size=5100) | json_values,
            "title": st.text(max_size=260) | json_values,
            "description": st.text(max_size=5100) | json_values,
            "priority": st.text(max_size=12) | json_values,
        },
    )
)
@settings(max_examples=200, deadline=None, database=None)
def test_message_and_maintenance_serializers_respect_the_columns(data):
    message = MessageCreateSerializer(data=data)
    if message.is_valid():
        assert 0 < len(message.validated_data["body"]) <= 5000
    report = MaintenanceReportSerializer(data=data)
    if report.is_valid():
        assert 0 < len(report.validated_data["title"]) <= 200
        assert "\x00" not in report.validated_data["title"]


def test_the_fuzz_run_was_big_enough():
    """Run with the file: the schemathesis tests above must have sent 2,000 requests."""
    if REQUESTS["sent"] == 0:
        pytest.skip("run together with the fuzz tests above")
    print(f"fuzz run: {REQUESTS}")  # shown with -s / -rP
    assert REQUESTS["sent"] >= 2000, REQUESTS
    # Not only refusals: bookings were made, and the stateful run used their tokens.
    assert REQUESTS.get("booked", 0) > 0 and REQUESTS.get("opened_with_token", 0) > 0, REQUESTS
