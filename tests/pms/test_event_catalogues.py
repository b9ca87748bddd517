"""Every event is declared in its app's catalogue, and its payload has exactly its typed keys.

The catalogues are found, not listed: any installed app with an ``events`` module is
one, so a new app's catalogue is checked without anyone remembering to add it here.
"""

from __future__ import annotations

import importlib
import importlib.util
import typing
from datetime import timedelta
from decimal import Decimal
from types import ModuleType
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.db import transaction

from automation import events as automation_events
from automation.choices import MaintenanceStatus, ReportedBy
from automation.services import (
    maintenance_request_assign,
    maintenance_request_create,
    maintenance_request_transition,
    maintenance_request_update,
)
from bookings import events as booking_events
from bookings.choices import BookingStatus
from bookings.models import Refund
from bookings.services import (
    block_cancel,
    block_create,
    block_update,
    booking_cancel,
    booking_check_in,
    booking_check_out,
    booking_confirm,
    booking_create,
    booking_mark_no_show,
    booking_modify,
    guest_message_post,
    payment_mark_received,
    payment_request,
    payments_settle,
    refund_mark_completed,
    refunds_reconcile,
)
from pms.models import DomainEvent
from pms.pipeline.registry import all_handlers


def _catalogues() -> dict[str, ModuleType]:
    found = {}
    for app in django_apps.get_app_configs():
        if importlib.util.find_spec(f"{app.name}.events") is not None:
            found[app.name] = importlib.import_module(f"{app.name}.events")
    return found


def _assert_exact_keys(payload: Any, typed: Any, where: str) -> None:
    """``payload`` has exactly the keys of the TypedDict ``typed``, nested TypedDicts too."""
    assert isinstance(payload, dict), where
    assert not typed.__optional_keys__, f"{where}: a stored payload type has no optional key"
    assert set(payload) == set(typed.__required_keys__), where
    for key, hint in typing.get_type_hints(typed).items():
        if typing.is_typeddict(hint):
            _assert_exact_keys(payload[key], hint, f"{where}.{key}")


def test_the_apps_that_emit_events_have_catalogues():
    assert {"bookings", "automation"} <= set(_catalogues())


def test_every_catalogue_types_each_of_its_events_and_nothing_else():
    for app, catalogue in _catalogues().items():
        assert set(catalogue.PAYLOAD_TYPES) == catalogue.EVENT_TYPES, app
        for event_type, payload_type in catalogue.PAYLOAD_TYPES.items():
            assert event_type.count(".") == 1, event_type  # "<aggregate>.<what happened>"
            assert typing.is_typeddict(payload_type), event_type


def test_no_event_type_is_declared_by_two_catalogues():
    declared = [t for catalogue in _catalogues().values() for t in catalogue.EVENT_TYPES]
    assert len(declared) == len(set(declared))


def test_every_event_type_an_application_handler_subscribes_to_is_in_a_catalogue():
    declared = {t for catalogue in _catalogues().values() for t in catalogue.EVENT_TYPES}
    app_names = {app.name for app in django_apps.get_app_configs()}
    subscribed = {
        (handler.name, event_type)
        for handler in all_handlers()
        if handler.func.__module__.split(".")[0] in app_names  # not tests' or bench's probes
        for event_type in handler.event_types
    }
    assert {name for name, _ in subscribed} >= {
        "bookings.calendar",
        "bookings.accounting",
        "automation.cleaning",
        "channelsync.outbound",
    }
    assert {(name, t) for name, t in subscribed if t not in declared} == set()


@pytest.fixture
def models(alice, future):
    """One of every model an event is built from, as the services leave them."""
    booking = booking_create(
        tenant=alice.tenant,
        property=alice.property,
        guest=alice.guest,
        check_in=future,
        check_out=future + timedelta(days=2),
    )
    payment = payment_request(booking=booking, amount=Decimal("10"))
    refund = Refund.objects.create(
        tenant_id=alice.tenant.pk, booking=booking, amount=Decimal("5"), currency="EUR"
    )
    block = block_create(
        tenant=alice.tenant,
        property=alice.property,
        start=future + timedelta(days=5),
        end=future + timedelta(days=6),
    )
    message = guest_message_post(booking=booking, sender="guest", body="Hello")
    request = maintenance_request_create(
        property=alice.property, title="Leaking tap", reported_by=ReportedBy.STAFF
    )
    cancelled = booking_cancel(booking=booking)
    return booking, cancelled, payment, refund, block, message, request


def test_each_builder_gives_exactly_the_keys_of_its_payload_type(models):
    booking, cancelled, payment, refund, block, message, request = models
    previous = booking_events.booking_snapshot(booking)
    built = {
        "booking.created": booking_events.booking_created_payload(booking),
        "booking.confirmed": booking_events.booking_confirmed_payload(booking),
        "booking.modified": booking_events.booking_modified_payload(booking, previous=previous),
        "booking.cancelled": booking_events.booking_cancelled_payload(
            cancelled, policy="strict", days_before=3, refund_percent=0
        ),
        "booking.checked_in": booking_events.booking_checked_in_payload(booking),
        "booking.checked_out": booking_events.booking_checked_out_payload(booking),
        "booking.no_show": booking_events.booking_no_show_payload(booking),
        "block.created": booking_events.block_created_payload(block),
        "block.modified": booking_events.block_modified_payload(block),
        "block.cancelled": booking_events.block_cancelled_payload(block),
        "payment.requested": booking_events.payment_requested_payload(payment, instructions="x"),
        "payment.received": booking_events.payment_received_payload(payment),
        "payment.cancelled": booking_events.payment_cancelled_payload(payment, reason="x"),
        "refund.requested": booking_events.refund_requested_payload(refund),
        "refund.completed": booking_events.refund_completed_payload(refund),
        "message.posted": booking_events.message_posted_payload(message),
        "maintenance.reported": automation_events.maintenance_reported_payload(request),
        "maintenance.assigned": automation_events.maintenance_assigned_payload(request),
        "maintenance.status_changed": automation_events.maintenance_status_changed_payload(
            request, previous_status="open"
        ),
        "maintenance.updated": automation_events.maintenance_updated_payload(
            request, changed=["title"]
        ),
    }
    payload_types = {
        event_type: payload_type
        for catalogue in _catalogues().values()
        for event_type, payload_type in catalogue.PAYLOAD_TYPES.items()
    }
    assert set(built) == set(payload_types)  # every event type has its builder here
    for event_type, payload in built.items():
        _assert_exact_keys(payload, payload_types[event_type], event_type)


def test_the_stored_payload_of_every_event_the_services_emit_has_exactly_its_typed_keys(
    alice, future
):
    def book(days: int, **kwargs: Any) -> Any:
        return booking_create(
            tenant=alice.tenant,
            property=alice.property,
            guest=alice.guest,
            check_in=future + timedelta(days=days),
            check_out=future + timedelta(days=days + 2),
            **kwargs,
        )

    stay = booking_confirm(booking=book(0, status=BookingStatus.REQUESTED))
    stay = booking_modify(booking=stay, check_in=stay.check_in, check_out=stay.check_out)
    booking_check_out(booking=booking_check_in(booking=stay))
    booking_mark_no_show(booking=book(10))
    paid = book(20)
    payment_mark_received(payment=payment_request(booking=paid, amount=Decimal("10")))
    booking_cancel(booking=paid)
    with transaction.atomic():
        refund = refunds_reconcile(booking_id=paid.pk)
    assert refund is not None
    refund_mark_completed(refund=refund)
    # A stay made shorter before it was paid: its request is cancelled and replaced.
    shorter = book(30)
    payment_request(booking=shorter, amount=shorter.total)
    shorter = booking_modify(
        booking=shorter, check_in=shorter.check_in, check_out=shorter.check_in + timedelta(1)
    )
    with transaction.atomic():
        payments_settle(booking_id=shorter.pk)
    block = block_create(
        tenant=alice.tenant,
        property=alice.property,
        start=future + timedelta(days=40),
        end=future + timedelta(days=41),
    )
    block_cancel(block=block_update(block=block, start=block.start, end=block.end, label="x"))
    guest_message_post(booking=paid, sender="guest", body="Hello")
    request = maintenance_request_create(
        property=alice.property, title="Leaking tap", reported_by=ReportedBy.STAFF
    )
    request = maintenance_request_assign(request=request, assignee=alice.staff)
    request = maintenance_request_transition(
        request=request, to_status=MaintenanceStatus.IN_PROGRESS
    )
    maintenance_request_update(
        request=request,
        title="Leaking kitchen tap",
        description="",
        priority=request.priority,
        photo=None,
    )

    payload_types = {
        event_type: payload_type
        for catalogue in _catalogues().values()
        for event_type, payload_type in catalogue.PAYLOAD_TYPES.items()
    }
    stored = list(DomainEvent.objects.all())
    assert {event.event_type for event in stored} == set(
        payload_types
    )  # every declared type was emitted
    for event in stored:
        _assert_exact_keys(event.payload, payload_types[event.event_type], event.event_type)
