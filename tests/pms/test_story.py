"""A booking's story: each event, each handler's delivery, the messages, pushes and failures."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bookings.selectors import booking_story_events
from bookings.services import block_create, booking_create, booking_modify
from channelsync.models import ChannelUpdate, Conflict, ImportedUid
from channelsync.services import channel_create
from pms.choices import DeliveryStatus, FailedTaskStatus
from pms.models import EventDelivery, FailedTask, FailedTaskAction
from pms.pipeline.delivery import run_delivery
from pms.pipeline.registry import get_handler
from pms.story import StorySubject, story

pytestmark = pytest.mark.django_db


def _deliver_all() -> None:
    """Run every pending delivery in this process until none is left (handlers emit more)."""
    rng = random.Random(11)
    while pending := list(
        EventDelivery.objects.filter(status=DeliveryStatus.PENDING).values_list("pk", "handler")
    ):
        rng.shuffle(pending)
        for delivery_id, name in pending:
            handler = get_handler(name)
            assert handler is not None
            run_delivery(handler, delivery_id)


def _story(booking):
    return story(
        StorySubject(
            model="bookings.booking", object_id=booking.pk, events=booking_story_events(booking)
        )
    )


@pytest.fixture
def stay(alice, future):
    booking = booking_create(
        tenant=alice.tenant,
        property=alice.property,
        guest=alice.guest,
        check_in=future,
        check_out=future + timedelta(days=3),
        actor="api:ana@example.test",
    )
    _deliver_all()
    return booking


def test_each_event_is_followed_by_what_it_caused(stay):
    lines = _story(stay)
    first = lines[0]
    assert first.kind == "event" and first.title == "booking.created"
    assert "api:ana@example.test" in first.detail
    caused = []
    for line in lines[1:]:
        if not line.nested:
            break
        caused.append(line)
    handlers = {line.title for line in caused if line.kind == "delivery"}
    assert {"bookings.calendar", "bookings.accounting", "bookings.payment_request"} <= handlers
    assert all(
        line.outcome == "Done" and line.tone == "ok" for line in caused if line.kind == "delivery"
    )
    emails = [line for line in caused if line.kind == "email"]
    assert any(f"to {stay.guest.email}" in line.title for line in emails)
    # The payment the booking asked for is part of the story too, with its own event.
    assert any(line.kind == "event" and line.title == "payment.requested" for line in lines)


def test_a_failed_task_and_what_staff_did_with_it_are_in_the_story(stay):
    delivery = EventDelivery.objects.filter(event__event_type="booking.created").first()
    assert delivery is not None
    now = timezone.now()
    failed = FailedTask.objects.create(
        task_id="story-1",
        task_name="pms.tasks.deliver_event",
        tenant_id=stay.tenant_id,
        event_id=delivery.event_id,
        delivery=delivery,
        exception_class="SMTPServerDisconnected",
        exception_message="connection lost",
        first_failed_at=now,
        last_failed_at=now,
        status=FailedTaskStatus.RESOLVED,
    )
    FailedTaskAction.objects.create(failed_task=failed, action="resolve", note="re-sent by hand")
    lines = _story(stay)
    failure = next(line for line in lines if line.kind == "failure")
    action = next(line for line in lines if line.kind == "action")
    assert failure.nested and "SMTPServerDisconnected" in failure.detail
    assert failure.outcome == "Resolved" and "re-sent by hand" in action.detail


def test_another_tenants_events_never_join_the_story(stay, bob, future):
    other = booking_create(
        tenant=bob.tenant,
        property=bob.property,
        guest=bob.guest,
        check_in=future,
        check_out=future + timedelta(days=2),
    )
    _deliver_all()
    titles = {line.title for line in _story(stay)}
    assert not any(other.guest.email in title for title in titles)
    events = booking_story_events(stay)
    assert {event.tenant_id for event in events} == {stay.tenant_id}


def test_the_story_costs_the_same_queries_for_few_or_many_events(stay):
    with CaptureQueriesContext(connection) as few:
        _story(stay)
    for nights in range(4, 12):
        booking_modify(
            booking=stay, check_in=stay.check_in, check_out=stay.check_in + timedelta(nights)
        )
    _deliver_all()
    with CaptureQueriesContext(connection) as many:
        lines = _story(stay)
    assert len([line for line in lines if line.title == "booking.modified"]) == 8
    assert len(many) == len(few), [q["sql"][:100] for q in many.captured_queries]


def test_the_booking_page_tells_its_story_to_the_manager_only(client, stay, alice, bob):
    client.force_login(alice.manager)
    page = client.get(f"/admin/bookings/booking/{stay.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200 and 'id="story"' in html
    assert "booking.created" in html and "bookings.accounting" in html
    client.force_login(bob.manager)
    assert client.get(f"/admin/bookings/booking/{stay.pk}/change/").status_code in (302, 404)


def test_a_channels_page_tells_its_story(client, alice, bob, future):
    channel = channel_create(
        tenant=alice.tenant,
        property=alice.property,
        name="Alice Airbnb",
        kind="airbnb",
        poll_interval=timedelta(minutes=15),
    )
    block = block_create(
        tenant=alice.tenant,
        property=alice.property,
        start=future,
        end=future + timedelta(days=2),
        label="Reserved",
        source="channel",
        allow_overlap=True,
    )
    ImportedUid.objects.create(
        tenant=alice.tenant, channel=channel, uid="uid-1", block=block, last_seen_at=timezone.now()
    )
    ChannelUpdate.objects.create(
        tenant=alice.tenant,
        channel=channel,
        event_id=uuid.uuid4(),
        aggregate_type="booking",
        aggregate_id="1",
        sequence=1,
        payload={},
        next_attempt_at=timezone.now(),
    )
    Conflict.objects.create(
        tenant=alice.tenant,
        property=alice.property,
        channel=channel,
        block=block,
        start=block.start,
        end=block.end,
    )
    now = timezone.now()
    FailedTask.objects.create(
        task_id="channel-story-1",
        task_name="channelsync.tasks.import_channel",
        args=[channel.pk],
        tenant_id=alice.tenant.pk,
        exception_class="ChannelFetchError",
        exception_message="feed answered 503",
        first_failed_at=now,
        last_failed_at=now,
    )
    client.force_login(alice.manager)
    html = client.get(f"/admin/channelsync/channel/{channel.pk}/change/").content.decode()
    assert 'id="story"' in html and "block.created" in html
    assert "Push of booking 1" in html and f"Conflict {block.start}" in html
    assert "feed answered 503" in html
    client.force_login(bob.manager)
    assert client.get(f"/admin/channelsync/channel/{channel.pk}/change/").status_code in (302, 404)
