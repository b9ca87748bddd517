"""Automation fixtures: cleaners, bookings through the services, a loopback SMS gateway."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from django.db import transaction

from bookings.services import booking_create
from tenants.choices import Role
from tenants.services import membership_grant
from tests.factories import GuestFactory, UserFactory
from tests.support.http_peer import HttpPeer, Reply, Seen


class SmsGateway:
    """The SMS provider's API, answered by a real HTTP peer on loopback."""

    def __init__(self, peer: HttpPeer) -> None:
        self.requests: list[dict[str, Any]] = []
        self.replies: list[int] = []  # status codes to answer, in order; then 200
        self.url = peer.url("/v1/sms")
        peer.routes["/v1/sms"] = self._send

    def _send(self, seen: Seen) -> Reply:
        self.requests.append(
            {"path": seen.path, "headers": seen.headers, "json": json.loads(seen.body or b"{}")}
        )
        code = self.replies.pop(0) if self.replies else 200
        body = json.dumps({"id": f"sms-{len(self.requests)}"}).encode()
        return Reply(code, body, {"Content-Type": "application/json"})


@pytest.fixture
def sms_gateway(settings: Any, peer: HttpPeer) -> SmsGateway:
    gateway = SmsGateway(peer)
    settings.SMS_BACKEND = "automation.sms.HttpGatewaySmsBackend"
    settings.SMS_GATEWAY_URL = gateway.url
    settings.SMS_GATEWAY_API_KEY = "test-key"
    settings.SMS_GATEWAY_TIMEOUT = 2
    return gateway


@pytest.fixture
def smtp_settings(settings: Any, mailbox: Any) -> Any:
    """Send from the test process to the real loopback SMTP sink."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = mailbox.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    return mailbox


def make_cleaner(world: Any, name: str) -> Any:
    user = UserFactory.create(username=f"{world.tenant.slug}-{name}")
    membership_grant(user=user, tenant=world.tenant, role=Role.CLEANER)
    return user


def book(world: Any, check_in: date, check_out: date, *, prop: Any = None, **kwargs: Any) -> Any:
    with transaction.atomic():
        return booking_create(
            tenant=world.tenant,
            property=prop or world.property,
            guest=kwargs.pop("guest", None) or GuestFactory.create(tenant=world.tenant),
            check_in=check_in,
            check_out=check_out,
            **kwargs,
        )
