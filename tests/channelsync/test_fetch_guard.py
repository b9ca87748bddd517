"""The fetcher refuses internal targets, after DNS and after redirects, and caps size and time."""

from __future__ import annotations

import pytest

from channelsync.feeds.fetch import (
    FetchHTTPError,
    FetchRefused,
    FetchTooLarge,
    FetchTransientError,
    address_refusal,
    safe_request,
)
from tests.support.http_peer import HttpPeer, Reply


@pytest.fixture
def no_loopback(settings):
    settings.CHANNEL_FETCH_ALLOW_LOOPBACK = False


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/feed.ics",
        "http://localhost/feed.ics",  # a name that resolves to loopback
        "http://[::1]/feed.ics",
        "http://10.0.0.1/feed.ics",
        "http://192.168.1.5/feed.ics",
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0/",
    ],
)
def test_internal_targets_are_refused_without_loopback(no_loopback, url):
    with pytest.raises(FetchRefused, match="refused"):
        safe_request("GET", url)


def test_a_loopback_server_is_refused_before_any_connection(no_loopback, peer):
    peer.routes["/feed.ics"] = Reply(200, b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")
    with pytest.raises(FetchRefused):
        safe_request("GET", peer.url("/feed.ics"))
    assert peer.requests == []


@pytest.mark.parametrize(
    "target", ["http://10.0.0.1/x", "http://169.254.169.254/latest/meta-data/"]
)
def test_a_redirect_to_an_internal_address_is_refused(peer, target):
    # Loopback allowed (the test server lives there); the private hop still is not.
    peer.routes["/feed.ics"] = Reply(302, headers={"Location": target})
    with pytest.raises(FetchRefused, match="refused"):
        safe_request("GET", peer.url("/feed.ics"))
    assert len(peer.hits("/feed.ics")) == 1


def test_a_redirect_to_loopback_is_refused_when_loopback_is_not_allowed(settings, peer):
    # First hop allowed, then the setting flips before the redirect is followed:
    # every hop is checked again, at connect time.
    class FlipOnFirstRequest:
        def __call__(self, seen):
            settings.CHANNEL_FETCH_ALLOW_LOOPBACK = False
            return Reply(302, headers={"Location": peer.url("/internal")})

    peer.routes["/feed.ics"] = FlipOnFirstRequest()
    peer.routes["/internal"] = Reply(200, b"secret")
    with pytest.raises(FetchRefused):
        safe_request("GET", peer.url("/feed.ics"))
    assert peer.hits("/internal") == []


def test_redirects_are_followed_within_the_limit(peer):
    peer.routes["/a"] = Reply(301, headers={"Location": "/b"})
    peer.routes["/b"] = Reply(200, b"ok")
    result = safe_request("GET", peer.url("/a"))
    assert (result.status, result.body, result.redirects) == (200, b"ok", [peer.url("/b")])


def test_a_redirect_loop_stops(peer):
    peer.routes["/loop"] = Reply(302, headers={"Location": "/loop"})
    with pytest.raises(FetchRefused, match="redirects"):
        safe_request("GET", peer.url("/loop"))
    assert len(peer.hits("/loop")) == 6


def test_size_is_capped(peer):
    peer.routes["/big"] = Reply(200, b"x" * 5000)
    with pytest.raises(FetchTooLarge):
        safe_request("GET", peer.url("/big"), max_bytes=1000)


def test_a_slow_server_times_out_as_a_transient_error(peer):
    peer.routes["/slow"] = Reply(200, b"late", delay=3)
    with pytest.raises(FetchTransientError, match="timed out"):
        safe_request("GET", peer.url("/slow"), timeout=0.5)


def test_429_carries_retry_after_and_5xx_is_transient(peer):
    peer.routes["/limited"] = Reply(429, headers={"Retry-After": "7"})
    peer.routes["/broken"] = Reply(503)
    with pytest.raises(FetchTransientError) as limited:
        safe_request("GET", peer.url("/limited"))
    assert (limited.value.status, limited.value.retry_after) == (429, 7.0)
    with pytest.raises(FetchTransientError) as broken:
        safe_request("GET", peer.url("/broken"))
    assert broken.value.status == 503


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("8.8.8.8", False),
        ("::ffff:127.0.0.1", True),
        ("::ffff:10.1.2.3", True),
        ("fe80::1", True),
        ("fc00::1", True),
        ("100.64.0.1", True),  # carrier-grade NAT: not global
        ("224.0.0.1", True),
        ("2002:a00:1::1", True),  # 6to4 around 10.0.0.1
        ("2002:808:808::1", True),  # 6to4 around a public address: still a relay hop
        ("fec0::1", True),  # site-local
        ("2001:4860:4860::8888", False),
    ],
)
def test_address_classification(address, refused):
    assert (address_refusal(address, allow_loopback=False) is not None) is refused


# --- Redirects of POSTs, credentials across origins, bad ports, the connect-time guard ------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_post_is_never_redirected_and_a_redirect_is_a_failure(peer, status):
    peer.routes["/hook"] = Reply(status, headers={"Location": "/elsewhere"})
    peer.routes["/elsewhere"] = Reply(200, b"ok")
    with pytest.raises(FetchHTTPError, match="redirect") as raised:
        safe_request("POST", peer.url("/hook"), data=b"{}", headers={"Authorization": "Bearer k"})
    assert raised.value.status == status
    assert peer.hits("/elsewhere") == []


def test_a_redirected_webhook_is_a_failed_delivery_not_a_delivered_one(alice, peer):
    import uuid

    from django.db import transaction

    from channelsync.models import WebhookDelivery
    from channelsync.services import (
        webhook_deliveries_record,
        webhook_delivery_attempt,
        webhook_subscription_create,
    )

    peer.routes["/hook"] = Reply(302, headers={"Location": "/landing"})
    peer.routes["/landing"] = Reply(200, b"<html>login</html>")
    webhook_subscription_create(
        tenant=alice.tenant, url=peer.url("/hook"), event_types=["*"], send_test=False
    )
    with transaction.atomic():
        webhook_deliveries_record(
            tenant_id=alice.tenant.pk,
            event_id=uuid.uuid4(),
            event_type="booking.created",
            payload={},
        )
    delivery = WebhookDelivery.objects.get()
    assert webhook_delivery_attempt(delivery_id=delivery.pk) == "failed"
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.last_status_code == 302
    assert "redirect" in delivery.last_error
    assert peer.hits("/landing") == []


def test_a_get_redirect_to_another_origin_drops_the_credentials(peer):
    other = HttpPeer().start()
    try:
        other.routes["/feed.ics"] = Reply(200, b"feed")
        peer.routes["/feed.ics"] = Reply(302, headers={"Location": other.url("/feed.ics")})
        peer.routes["/same"] = Reply(302, headers={"Location": "/feed2.ics"})
        peer.routes["/feed2.ics"] = Reply(200, b"feed")
        secret = {"Authorization": "Bearer channel-key", "Cookie": "session=1"}
        result = safe_request("GET", peer.url("/feed.ics"), headers=secret)
        assert result.body == b"feed"
        (hop,) = other.hits("/feed.ics")
        assert "Authorization" not in hop.headers and "Cookie" not in hop.headers
        # The same origin keeps them.
        safe_request("GET", peer.url("/same"), headers=secret)
        (same,) = peer.hits("/feed2.ics")
        assert same.headers["Authorization"] == "Bearer channel-key"
    finally:
        other.stop()


@pytest.mark.parametrize("url", ["http://example.com:99999/feed.ics", "http://example.com:x/"])
def test_an_invalid_port_is_refused_not_a_crash(url):
    with pytest.raises(FetchRefused, match="port"):
        safe_request("GET", url)


def test_a_redirect_to_an_invalid_port_is_refused(peer):
    peer.routes["/feed.ics"] = Reply(302, headers={"Location": "http://127.0.0.1:99999/x"})
    with pytest.raises(FetchRefused, match="port"):
        safe_request("GET", peer.url("/feed.ics"))


def test_the_connection_itself_refuses_a_name_that_resolves_to_loopback(no_loopback, peer):
    # DNS rebinding: the name passed the first check, then resolves to loopback
    # when the socket is opened. Go straight to the session, past _check_url.
    from channelsync.feeds.fetch import _refusal_in, _session

    peer.routes["/internal"] = Reply(200, b"secret")
    with _session() as session, pytest.raises(Exception) as raised:
        session.get(f"http://localhost:{peer.port}/internal", timeout=5)
    assert isinstance(_refusal_in(raised.value), FetchRefused)
    assert peer.requests == []


def test_a_refused_name_does_not_reveal_the_address_it_resolved_to(no_loopback, peer):
    # "localhost" stands for any internal name: the error a tenant sees (stored on
    # the channel) says "refused", never what the name resolves to.
    with pytest.raises(FetchRefused) as raised:
        safe_request("GET", f"http://localhost:{peer.port}/feed.ics")
    assert str(raised.value) == "refused: not a public address"
    assert "127.0.0.1" not in str(raised.value) and "::1" not in str(raised.value)


@pytest.mark.django_db
def test_a_channel_fetching_an_internal_name_stores_only_that_it_was_refused(
    no_loopback, make_channel, peer
):
    from channelsync.models import Channel
    from channelsync.tasks import import_channel

    channel = make_channel(import_url=f"http://localhost:{peer.port}/feed.ics")
    assert import_channel(channel.pk) == "error"
    channel = Channel.objects.get(pk=channel.pk)
    assert channel.last_error == "fetch: refused: not a public address"
    assert peer.requests == []
