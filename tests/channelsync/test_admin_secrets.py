"""Secrets in the channel admin: masked for everyone, shown once on creation or rotation."""

from __future__ import annotations

import time

import pytest

from channelsync.choices import ChannelKind
from channelsync.models import Channel, WebhookSubscription
from channelsync.services.webhooks import signature, signature_valid, webhook_subscription_create
from tests.factories import PASSWORD
from tests.support.admin_forms import change_form_data

pytestmark = pytest.mark.django_db

PUSH_KEY = "hostaway-live-key-8c1d2e3f4a5b6c7d9f00"


@pytest.fixture
def subscription(alice):
    return webhook_subscription_create(
        tenant=alice.tenant,
        url="https://hooks.alice.example/pms",
        event_types=["*"],
        send_test=False,
    )


@pytest.fixture
def push_channel(alice, make_channel):
    return make_channel(
        name="Hostaway",
        kind=ChannelKind.PUSH_API,
        push_url="https://api.hostaway.example/v1/calendar",
        push_api_key=PUSH_KEY,
        push_listing_id="L-1",
        import_url="https://www.airbnb.example/calendar/ical/1.ics?s=feedtoken12345678",
    )


def _page(client, user, url):
    client.login(username=user.username, password=PASSWORD)
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


@pytest.mark.parametrize("who", ["staff", "manager"])
def test_nobody_reads_a_webhook_secret_back_only_its_last_four(client, alice, subscription, who):
    body = _page(
        client,
        getattr(alice, who),
        f"/admin/channelsync/webhooksubscription/{subscription.pk}/change/",
    )
    assert subscription.secret not in body
    assert subscription.secret[-4:] in body


def test_view_only_staff_see_no_push_key_feed_token_or_export_token(client, alice, push_channel):
    body = _page(client, alice.staff, f"/admin/channelsync/channel/{push_channel.pk}/change/")
    assert PUSH_KEY not in body and PUSH_KEY[-4:] in body
    assert "feedtoken12345678" not in body
    assert push_channel.export_token not in body


def test_a_managers_form_never_holds_the_push_key_and_blank_keeps_it(client, alice, push_channel):
    url = f"/admin/channelsync/channel/{push_channel.pk}/change/"
    body = _page(client, alice.manager, url)
    assert PUSH_KEY not in body and PUSH_KEY[-4:] in body

    data = change_form_data(client, url, push_api_key="", name="Hostaway main")
    assert client.post(url, data).status_code == 302
    push_channel.refresh_from_db()
    assert push_channel.name == "Hostaway main" and push_channel.push_api_key == PUSH_KEY

    data = change_form_data(client, url, push_api_key="a-new-key-0042")
    assert client.post(url, data).status_code == 302
    assert Channel.objects.get(pk=push_channel.pk).push_api_key == "a-new-key-0042"


def test_rotating_a_webhook_secret_shows_the_new_one_once_and_signs_with_it(
    client, alice, subscription
):
    old = subscription.secret
    client.login(username=alice.manager.username, password=PASSWORD)
    response = client.post(
        "/admin/channelsync/webhooksubscription/",
        {"action": "rotate_secret", "_selected_action": [subscription.pk]},
    )
    assert response.status_code == 200
    new = WebhookSubscription.objects.get(pk=subscription.pk).secret
    assert new != old
    assert new in response.content.decode() and old not in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    # Never again: the change page shows only the last four characters.
    later = client.get(f"/admin/channelsync/webhooksubscription/{subscription.pk}/change/")
    assert new not in later.content.decode()
    # Deliveries are signed with the new secret; the old one no longer verifies.
    timestamp, body = str(int(time.time())), b"{}"
    header = signature(secret=new, timestamp=timestamp, body=body)
    assert signature_valid(secret=new, timestamp=timestamp, body=body, header=header)
    assert not signature_valid(secret=old, timestamp=timestamp, body=body, header=header)


def test_view_only_staff_cannot_rotate_a_webhook_secret(client, alice, subscription):
    client.login(username=alice.staff.username, password=PASSWORD)
    page = client.get("/admin/channelsync/webhooksubscription/")
    assert "rotate_secret" not in page.content.decode()
    response = client.post(
        "/admin/channelsync/webhooksubscription/",
        {"action": "rotate_secret", "_selected_action": [subscription.pk]},
    )
    assert subscription.secret not in response.content.decode()
    assert WebhookSubscription.objects.get(pk=subscription.pk).secret == subscription.secret


def test_the_other_tenant_cannot_rotate_or_read_a_secret(client, bob, subscription):
    client.login(username=bob.manager.username, password=PASSWORD)
    response = client.post(
        "/admin/channelsync/webhooksubscription/",
        {"action": "rotate_secret", "_selected_action": [subscription.pk]},
    )
    assert subscription.secret not in response.content.decode()
    assert WebhookSubscription.objects.get(pk=subscription.pk).secret == subscription.secret
    assert (
        client.get(f"/admin/channelsync/webhooksubscription/{subscription.pk}/change/").status_code
        == 404
    )


def test_a_new_subscription_shows_its_secret_once(client, alice):
    client.login(username=alice.manager.username, password=PASSWORD)
    response = client.post(
        "/admin/channelsync/webhooksubscription/add/",
        {"tenant": alice.tenant.pk, "url": "https://hooks.alice.example/new", "event_types": "*"},
    )
    assert response.status_code == 200, response.content.decode()[:2000]
    created = WebhookSubscription.objects.get(url="https://hooks.alice.example/new")
    assert created.secret in response.content.decode()
    later = client.get(f"/admin/channelsync/webhooksubscription/{created.pk}/change/")
    assert created.secret not in later.content.decode()


@pytest.mark.parametrize(
    "import_url",
    [
        "https://calendar.google.example/calendar/ical/x/private-pathtoken1234/basic.ics",
        "https://feeduser:feedpass5678@feeds.example/ical/room.ics",
    ],
)
def test_a_feed_token_in_the_path_or_user_part_is_masked_for_readers_too(
    client, alice, push_channel, import_url
):
    Channel.objects.filter(pk=push_channel.pk).update(import_url=import_url)
    body = _page(client, alice.staff, f"/admin/channelsync/channel/{push_channel.pk}/change/")
    assert "pathtoken1234" not in body and "feedpass5678" not in body and "feeduser" not in body


def test_the_channel_list_cannot_be_searched_for_a_feed_token(client, alice, push_channel):
    # A reader who sees the URL masked must not recover it one character at a time.
    body = _page(client, alice.staff, "/admin/channelsync/channel/?q=feedtoken")
    assert "Hostaway" not in body
    body = _page(client, alice.staff, "/admin/channelsync/channel/?q=Hostaway")
    assert "Hostaway" in body
