"""Calendar blocks: manual and imported, and how they meet bookings."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bookings.errors import BookingError
from bookings.handlers import calendar_apply_block_event
from bookings.models import Block, CalendarEntry
from bookings.services import block_cancel, block_create, block_upsert, booking_create
from pms.models import DomainEvent
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def test_blocked_dates_cannot_be_booked(alice, future):
    block_create(
        tenant=alice.tenant, property=alice.property, start=future, end=future + timedelta(days=4)
    )
    with pytest.raises(BookingError) as excinfo:
        booking_create(
            tenant=alice.tenant,
            property=alice.property,
            guest=alice.guest,
            check_in=future + timedelta(days=3),
            check_out=future + timedelta(days=6),
        )
    assert excinfo.value.code == "unavailable" and "blocked" in str(excinfo.value)


def test_a_manual_block_may_not_cover_a_booking_but_an_import_may(alice, future):
    booking_create(
        tenant=alice.tenant,
        property=alice.property,
        guest=alice.guest,
        check_in=future,
        check_out=future + timedelta(days=3),
    )
    with pytest.raises(BookingError):
        block_create(
            tenant=alice.tenant,
            property=alice.property,
            start=future,
            end=future + timedelta(days=2),
        )
    block, outcome = block_upsert(
        tenant=alice.tenant,
        property=alice.property,
        source="channel:1",
        external_uid="uid-1@airbnb",
        start=future,
        end=future + timedelta(days=2),
        label="Reserved",
    )
    assert outcome == "created" and block.is_active


def test_upsert_by_uid_creates_then_moves_then_stays_quiet(alice, future):
    kwargs = {
        "tenant": alice.tenant,
        "property": alice.property,
        "source": "channel:1",
        "external_uid": "u1",
    }
    first, created = block_upsert(start=future, end=future + timedelta(days=2), **kwargs)
    moved, modified = block_upsert(
        start=future + timedelta(days=1), end=future + timedelta(days=3), **kwargs
    )
    same, unchanged = block_upsert(
        start=future + timedelta(days=1), end=future + timedelta(days=3), **kwargs
    )
    assert (created, modified, unchanged) == ("created", "modified", "unchanged")
    assert first.pk == moved.pk == same.pk and Block.objects.count() == 1
    events = DomainEvent.objects.filter(aggregate_type="block").values_list("event_type", flat=True)
    assert list(events) == ["block.created", "block.modified"]


def test_cancelled_block_frees_the_calendar(alice, future):
    block = block_create(
        tenant=alice.tenant, property=alice.property, start=future, end=future + timedelta(days=2)
    )
    block_cancel(block=block)
    for event in DomainEvent.objects.filter(aggregate_type="block").order_by(
        "-sequence"
    ):  # newest first
        calendar_apply_block_event(event)
    entry = CalendarEntry.objects.get(source_key=f"block:{block.pk}")
    assert entry.active is False and entry.kind == "block"


def test_manager_adds_a_block_in_the_admin_and_cannot_overlap_a_booking(client, alice, future):
    booking_create(
        tenant=alice.tenant,
        property=alice.property,
        guest=alice.guest,
        check_in=future,
        check_out=future + timedelta(days=3),
    )
    client.login(username=alice.manager.username, password=PASSWORD)
    data = {"tenant": alice.tenant.pk, "property": alice.property.pk, "label": "owner stay"}
    refused = client.post(
        "/admin/bookings/block/add/",
        {**data, "start": future.isoformat(), "end": (future + timedelta(days=1)).isoformat()},
    )
    assert refused.status_code == 200 and "overlap a booking" in refused.content.decode()
    accepted = client.post(
        "/admin/bookings/block/add/",
        {
            **data,
            "start": (future + timedelta(days=3)).isoformat(),
            "end": (future + timedelta(days=5)).isoformat(),
        },
    )
    assert accepted.status_code == 302
    assert DomainEvent.objects.filter(
        event_type="block.created", actor=f"admin:{alice.manager.username}"
    ).exists()
