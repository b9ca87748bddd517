"""Outbound webhooks signed per Standard Webhooks, verified by a real loopback receiver
with the reference ``standardwebhooks`` library; the deprecated headers still verify."""

from __future__ import annotations

import json
import secrets
import uuid
from typing import Any

import pytest
from django.db import transaction
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from channelsync.choices import OutboundStatus
from channelsync.models import WebhookDelivery
from channelsync.services.webhooks import (
    signature_valid,
    webhook_deliveries_record,
    webhook_delivery_attempt,
    webhook_subscription_create,
)
from channelsync.webhook_signing import standard_secret
from tests.factories import PASSWORD
from tests.support.http_peer import Reply

pytestmark = pytest.mark.django_db


@pytest.fixture
def subscription(alice, peer):
    return webhook_subscription_create(
        tenant=alice.tenant, url=peer.url("/hook"), event_types=["booking.created"], send_test=False
    )


def _delivery(subscription):
    with transaction.atomic():
        webhook_deliveries_record(
            tenant_id=subscription.tenant_id,
            event_id=uuid.uuid4(),
            event_type="booking.created",
            payload={"booking_id": 1},
        )
    return WebhookDelivery.objects.filter(subscription=subscription).order_by("-pk").first()


def _standard_receiver(peer, whsec, verified):
    """A receiver doing what the README tells integrators: Webhook(secret).verify."""

    def receive(seen):
        try:
            verified.append(Webhook(whsec).verify(seen.body, seen.headers))
        except WebhookVerificationError:
            return Reply(401)
        return Reply(204)

    peer.routes["/hook"] = receive


def test_a_receiver_verifies_a_delivery_with_the_standardwebhooks_library(subscription, peer):
    assert subscription.secret.startswith("whsec_")  # new subscriptions: Standard secrets
    verified: list[dict[str, Any]] = []
    _standard_receiver(peer, subscription.signing_secret, verified)
    delivery = _delivery(subscription)
    assert webhook_delivery_attempt(delivery_id=delivery.pk) == "delivered"
    (seen,) = peer.hits("/hook")
    assert seen.headers["webhook-id"] == str(delivery.event_id)
    assert seen.headers["webhook-signature"].startswith("v1,")
    assert verified == [json.loads(seen.body)] and verified[0]["id"] == str(delivery.event_id)
    # The deprecated headers are still sent, and still verify, for one release.
    assert signature_valid(
        secret=subscription.secret,
        timestamp=seen.headers["X-PMS-Timestamp"],
        body=seen.body,
        header=seen.headers["X-PMS-Signature"],
    )


def test_a_subscription_with_an_old_hex_secret_verifies_with_its_whsec_form(subscription, peer):
    old_secret = secrets.token_hex(32)  # what subscriptions were given before
    subscription.secret = old_secret
    subscription.save(update_fields=["secret"])
    verified: list[dict[str, Any]] = []
    _standard_receiver(peer, standard_secret(old_secret), verified)
    delivery = _delivery(subscription)
    assert webhook_delivery_attempt(delivery_id=delivery.pk) == "delivered"
    (seen,) = peer.hits("/hook")
    assert len(verified) == 1
    # The receiver that still checks the old header with the old secret keeps working.
    assert signature_valid(
        secret=old_secret,
        timestamp=seen.headers["X-PMS-Timestamp"],
        body=seen.body,
        header=seen.headers["X-PMS-Signature"],
    )


def test_a_receiver_holding_another_secret_rejects_the_delivery(subscription, peer):
    verified: list[dict[str, Any]] = []
    _standard_receiver(peer, standard_secret(secrets.token_hex(32)), verified)
    delivery = _delivery(subscription)
    assert webhook_delivery_attempt(delivery_id=delivery.pk) == "failed"
    delivery.refresh_from_db()
    assert delivery.last_status_code == 401 and delivery.status == OutboundStatus.PENDING
    assert verified == []


def test_a_tampered_body_does_not_verify(subscription, peer):
    peer.routes["/hook"] = Reply(204)
    delivery = _delivery(subscription)
    webhook_delivery_attempt(delivery_id=delivery.pk)
    (seen,) = peer.hits("/hook")
    Webhook(subscription.signing_secret).verify(seen.body, seen.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(subscription.signing_secret).verify(seen.body.replace(b"1", b"2"), seen.headers)


def test_the_admin_names_the_whsec_signing_secret_masked_to_its_tenant_only(
    client, alice, bob, subscription
):
    url = f"/admin/channelsync/webhooksubscription/{subscription.pk}/change/"
    client.login(username=alice.manager.username, password=PASSWORD)
    page = client.get(url).content.decode()
    # Shown once when created or rotated (tests/channelsync/test_admin_secrets.py), then
    # only its last characters, in the whsec_ form receivers configure.
    assert "signing secret (standard webhooks)" in page.lower()
    assert subscription.signing_secret[-4:] in page
    assert subscription.signing_secret not in page and subscription.secret not in page
    client.logout()
    client.login(username=bob.manager.username, password=PASSWORD)
    assert client.get(url).status_code == 404
