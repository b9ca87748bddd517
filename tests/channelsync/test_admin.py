"""Channel sync in the admin: health in view, actions, and tenant isolation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from bookings.services import block_upsert, booking_create
from channelsync.choices import ChannelStatus
from channelsync.models import Channel, Conflict, WebhookSubscription
from channelsync.services import channel_record_failure, webhook_subscription_create
from pms.models import DomainEvent
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_things(alice, make_channel, future):
    channel = make_channel(name="Alice Airbnb", import_url="https://example.com/alice.ics")
    booking = booking_create(
        tenant=alice.tenant,
        property=alice.property,
        guest=alice.guest,
        check_in=future,
        check_out=future + timedelta(days=2),
    )
    block, _ = block_upsert(
        tenant=alice.tenant,
        property=alice.property,
        source=channel.block_source,
        external_uid="x@airbnb.com",
        start=future,
        end=future + timedelta(days=1),
    )
    conflict = Conflict.objects.create(
        tenant=alice.tenant,
        property=alice.property,
        channel=channel,
        block=block,
        booking=booking,
        start=future,
        end=future + timedelta(days=1),
    )
    subscription = webhook_subscription_create(
        tenant=alice.tenant,
        url="https://hooks.alice.example/pms",
        event_types=["*"],
        send_test=False,
    )
    return {"channel": channel, "conflict": conflict, "subscription": subscription}


def _login(client, world):
    client.login(username=world.manager.username, password=PASSWORD)
    return client


def test_channel_list_shows_health_with_colour_last_success_and_error(client, alice, alice_things):
    channel = alice_things["channel"]
    Channel.objects.filter(pk=channel.pk).update(last_success_at=timezone.now())
    channel_record_failure(channel_id=channel.pk, error="fetch: HTTP 503 from example.com")
    body = _login(client, alice).get("/admin/channelsync/channel/").content.decode()
    assert "Alice Airbnb" in body
    assert "#c82333" in body and "Error" in body  # red status badge
    assert "HTTP 503 from example.com" in body
    assert 'name="_selected_action"' in body


@pytest.mark.parametrize(
    "url",
    [
        "/admin/channelsync/channel/",
        "/admin/channelsync/conflict/",
        "/admin/channelsync/webhooksubscription/",
        "/admin/channelsync/webhookdelivery/",
        "/admin/channelsync/channelupdate/",
    ],
)
def test_the_other_tenant_sees_none_of_it(client, alice, bob, alice_things, url):
    response = _login(client, bob).get(url)
    assert response.status_code == 200
    body = response.content.decode()
    for secret in ("Alice Airbnb", "hooks.alice.example", alice.property.name):
        assert secret not in body
    assert 'name="_selected_action"' not in body  # no row at all


@pytest.mark.parametrize(
    ("model", "key"),
    [("channel", "channel"), ("conflict", "conflict"), ("webhooksubscription", "subscription")],
)
def test_the_other_tenants_objects_answer_404(client, bob, alice_things, model, key):
    pk = alice_things[key].pk
    response = _login(client, bob).get(f"/admin/channelsync/{model}/{pk}/change/")
    assert response.status_code == 404


def test_staff_can_view_but_not_add_channels(client, alice, alice_things):
    client.login(username=alice.staff.username, password=PASSWORD)
    assert client.get("/admin/channelsync/channel/").status_code == 200
    assert client.get("/admin/channelsync/channel/add/").status_code == 403


def test_a_manager_adds_pauses_and_resumes_a_channel(client, alice):
    _login(client, alice)
    response = client.post(
        "/admin/channelsync/channel/add/",
        {
            "tenant": alice.tenant.pk,
            "property": alice.property.pk,
            "name": "Booking.com",
            "kind": "booking_com",
            "import_url": "https://admin.booking.com/hotel/ical.ics",
            "poll_interval": "00:30:00",
            "rate_limit_per_second": "5",
            "rate_limit_burst": "5",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    channel = Channel.objects.get(name="Booking.com")
    assert channel.next_poll_at is not None and channel.export_token
    client.post(
        "/admin/channelsync/channel/", {"action": "pause", "_selected_action": [channel.pk]}
    )
    channel.refresh_from_db()
    assert channel.is_paused and channel.status == ChannelStatus.PAUSED
    client.post(
        "/admin/channelsync/channel/", {"action": "resume", "_selected_action": [channel.pk]}
    )
    channel.refresh_from_db()
    assert not channel.is_paused


def test_a_manager_resolves_a_conflict(client, alice, alice_things):
    conflict = alice_things["conflict"]
    _login(client, alice).post(
        "/admin/channelsync/conflict/",
        {"action": "mark_resolved", "_selected_action": [conflict.pk]},
    )
    conflict.refresh_from_db()
    assert conflict.status == "resolved" and conflict.resolved_by == alice.manager


def test_the_other_tenant_cannot_act_on_foreign_rows(client, bob, alice_things):
    subscription = alice_things["subscription"]
    _login(client, bob).post(
        "/admin/channelsync/channel/",
        {"action": "pause", "_selected_action": [alice_things["channel"].pk]},
    )
    assert not Channel.objects.get(pk=alice_things["channel"].pk).is_paused
    assert WebhookSubscription.objects.get(pk=subscription.pk).is_active


# --- Editing goes through the services; no corrupted fields, no stranded blocks -------------


def test_editing_a_subscription_keeps_its_event_types(client, alice, peer):
    import re

    from channelsync.selectors import webhook_subscriptions_for

    subscription = webhook_subscription_create(
        tenant=alice.tenant,
        url="https://hooks.alice.example/old",
        event_types=["booking.created", "*"],
        send_test=False,
    )
    page = f"/admin/channelsync/webhooksubscription/{subscription.pk}/change/"
    form = _login(client, alice).get(page).content.decode()
    found = re.search(r'name="event_types"[^>]*value="([^"]*)"', form)
    assert found is not None
    shown = found.group(1)
    assert shown == "booking.created, *"
    # Save the form as the browser sends it, with only the URL changed.
    response = client.post(
        page, {"tenant": alice.tenant.pk, "url": peer.url("/hook"), "event_types": shown}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    subscription.refresh_from_db()
    assert subscription.url == peer.url("/hook")
    assert subscription.event_types == ["booking.created", "*"]
    matched = webhook_subscriptions_for(tenant_id=alice.tenant.pk, event_type="block.cancelled")
    assert [s.pk for s in matched] == [subscription.pk]


def test_a_channel_url_with_an_impossible_port_is_a_form_error(client, alice):
    response = _login(client, alice).post(
        "/admin/channelsync/channel/add/",
        {
            "tenant": alice.tenant.pk,
            "property": alice.property.pk,
            "name": "Bad port",
            "kind": "airbnb",
            "import_url": "https://example.com:99999/a.ics",
            "poll_interval": "00:30:00",
            "rate_limit_per_second": "5",
            "rate_limit_burst": "5",
        },
    )
    assert response.status_code == 200
    assert "The port must be between 1 and 65535." in response.content.decode()
    assert not Channel.objects.filter(name="Bad port").exists()


def _channel_form(channel, **changes):
    data = {
        "name": channel.name,
        "kind": channel.kind,
        "import_url": channel.import_url,
        "poll_interval": "00:15:00",
        "push_url": channel.push_url,
        "push_api_key": channel.push_api_key,
        "push_listing_id": channel.push_listing_id,
        "rate_limit_per_second": "5",
        "rate_limit_burst": "5",
    }
    data.update(changes)
    return data


def test_adding_an_import_url_in_the_admin_schedules_a_poll(client, alice, make_channel, bob):
    channel = make_channel(name="Later feed", import_url="")
    assert channel.next_poll_at is None
    page = f"/admin/channelsync/channel/{channel.pk}/change/"
    response = _login(client, alice).post(
        page,
        _channel_form(channel, import_url="https://example.com/new.ics", property=bob.property.pk),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    channel.refresh_from_db()
    assert channel.import_url == "https://example.com/new.ics"
    assert channel.next_poll_at is not None and channel.next_poll_at <= timezone.now()
    assert channel.property_id == alice.property.pk  # read-only on change


def test_a_poll_interval_under_five_minutes_is_refused(client, alice, make_channel):
    channel = make_channel(name="Eager", import_url="https://example.com/e.ics")
    response = _login(client, alice).post(
        f"/admin/channelsync/channel/{channel.pk}/change/",
        _channel_form(channel, poll_interval="00:01:00"),
    )
    assert response.status_code == 200
    channel.refresh_from_db()
    assert channel.poll_interval == timedelta(minutes=15)


def test_deleting_a_channel_cancels_its_imported_blocks(client, alice, alice_things):
    from bookings.models import Block

    channel = alice_things["channel"]
    source = channel.block_source
    assert Block.objects.filter(source=source, is_active=True).count() == 1
    # A manager retires it (the action); a superuser may delete it: both cancel the blocks.
    _login(client, alice).post(
        "/admin/channelsync/channel/", {"action": "retire", "_selected_action": [channel.pk]}
    )
    assert not Channel.objects.filter(pk=channel.pk).exists()
    assert Block.objects.filter(source=source, is_active=True).count() == 0
    assert DomainEvent.objects.filter(event_type="block.cancelled").count() == 1


def test_a_superuser_deleting_a_channel_cancels_its_blocks(client, superuser, alice_things):
    from bookings.models import Block

    channel = alice_things["channel"]
    client.login(username=superuser.username, password=PASSWORD)
    response = client.post(f"/admin/channelsync/channel/{channel.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Channel.objects.filter(pk=channel.pk).exists()
    assert not Block.objects.filter(source=channel.block_source, is_active=True).exists()
    assert DomainEvent.objects.filter(event_type="block.cancelled").count() == 1


@pytest.mark.parametrize(
    ("url", "row", "limit"),
    [
        ("/admin/channelsync/channel/", 'class="field-name', 10),
        ("/admin/channelsync/conflict/", 'class="field-property', 10),
        ("/admin/channelsync/webhookdelivery/", 'class="field-event_type', 10),
    ],
)
def test_changelists_take_a_fixed_number_of_queries(
    client, alice, make_channel, future, django_assert_max_num_queries, url, row, limit
):
    import uuid

    from channelsync.models import WebhookDelivery

    subscription = webhook_subscription_create(
        tenant=alice.tenant, url="https://hooks.alice.example/q", event_types=["*"], send_test=False
    )
    for index in range(6):
        channel = make_channel(name=f"ch{index}", import_url=f"https://example.com/{index}.ics")
        start = future + timedelta(days=4 * index)
        booking = booking_create(
            tenant=alice.tenant,
            property=alice.property,
            guest=alice.guest,
            check_in=start,
            check_out=start + timedelta(days=1),
        )
        block, _ = block_upsert(
            tenant=alice.tenant,
            property=alice.property,
            source=channel.block_source,
            external_uid=f"{index}@airbnb.com",
            start=start,
            end=start + timedelta(days=1),
        )
        Conflict.objects.create(
            tenant=alice.tenant,
            property=alice.property,
            channel=channel,
            block=block,
            booking=booking,
            start=start,
            end=start + timedelta(days=1),
        )
        WebhookDelivery.objects.create(
            tenant=alice.tenant,
            subscription=subscription,
            event_id=uuid.uuid4(),
            event_type="booking.created",
            payload={},
            next_attempt_at=timezone.now(),
        )
    _login(client, alice)
    with django_assert_max_num_queries(limit):
        response = client.get(url)
    assert response.status_code == 200
    assert response.content.decode().count(row) == 6
