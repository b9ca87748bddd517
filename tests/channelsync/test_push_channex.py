"""The Channex-shaped push adapter (availability and rates), against a loopback peer."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest

from channelsync.choices import ChannelKind, OutboundStatus
from channelsync.models import Channel, ChannelUpdate
from channelsync.services import channel_updates_push, channel_updates_record
from tests.factories import PASSWORD
from tests.support.http_peer import Reply

pytestmark = pytest.mark.django_db


@pytest.fixture
def channex(make_channel, peer, alice):
    alice.property.nightly_rate = Decimal("120.00")
    alice.property.save(update_fields=["nightly_rate"])
    peer.routes["/api/v1/availability"] = Reply(200, b'{"data":[]}')
    peer.routes["/api/v1/restrictions"] = Reply(200, b'{"data":[]}')
    return make_channel(
        name="Channex",
        kind=ChannelKind.PUSH_CHANNEX,
        push_url=peer.url("/"),
        push_api_key="ch-key",
        push_listing_id="prop-1/room-1/plan-1",
        rate_limit_per_second=50,
        rate_limit_burst=50,
    )


def _update(channel, sequence, available):
    channel_updates_record(
        channel=channel,
        event_id=uuid.uuid4(),
        aggregate_type="booking",
        aggregate_id="7",
        sequence=sequence,
        payload={"start": "2030-01-01", "end": "2030-01-04", "available": available},
    )


def test_a_booking_closes_its_nights_and_a_cancellation_reopens_them_at_the_rate(channex, peer):
    _update(channex, 1, available=False)
    assert channel_updates_push(channel_id=channex.pk)["sent"] == 1
    (closed,) = peer.hits("/api/v1/availability")
    assert closed.headers["user-api-key"] == "ch-key"
    # ARI dates are nights, inclusive: a stay 1 to 4 January takes the nights 1..3.
    assert json.loads(closed.body) == {
        "values": [
            {
                "property_id": "prop-1",
                "room_type_id": "room-1",
                "date_from": "2030-01-01",
                "date_to": "2030-01-03",
                "availability": 0,
            }
        ]
    }
    assert peer.hits("/api/v1/restrictions") == []  # closing nights sends no rate

    _update(channex, 2, available=True)
    assert channel_updates_push(channel_id=channex.pk)["sent"] == 1
    assert json.loads(peer.hits("/api/v1/availability")[1].body)["values"][0]["availability"] == 1
    (rate,) = peer.hits("/api/v1/restrictions")
    assert json.loads(rate.body) == {
        "values": [
            {
                "property_id": "prop-1",
                "rate_plan_id": "plan-1",
                "date_from": "2030-01-01",
                "date_to": "2030-01-03",
                "rate": "120.00",
            }
        ]
    }


def test_a_malformed_listing_id_pauses_the_channel_and_keeps_the_update(channex, peer):
    Channel.objects.filter(pk=channex.pk).update(push_listing_id="prop-only")
    _update(channex, 1, available=False)
    assert channel_updates_push(channel_id=channex.pk)["paused"] == 1
    channex.refresh_from_db()
    assert channex.is_paused and "listing id" in channex.last_error
    assert ChannelUpdate.objects.get(channel=channex).status == OutboundStatus.PENDING
    assert peer.hits("/api/v1/availability") == []


def test_the_admin_refuses_a_channex_listing_id_without_a_room_type(client, alice):
    client.login(username=alice.manager.username, password=PASSWORD)
    response = client.post(
        "/admin/channelsync/channel/add/",
        {
            "tenant": alice.tenant.pk,
            "property": alice.property.pk,
            "name": "Channex",
            "kind": ChannelKind.PUSH_CHANNEX,
            "push_url": "https://staging.channex.io",
            "push_listing_id": "prop-1",
            "poll_interval": "00:30:00",
            "rate_limit_per_second": "5",
            "rate_limit_burst": "5",
        },
    )
    assert response.status_code == 200
    assert "For Channex the listing id must be" in response.content.decode()
    assert not Channel.objects.filter(name="Channex").exists()
