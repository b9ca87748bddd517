"""Automation fixtures: cleaners, bookings through the services, a loopback SMS gateway."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.db import transaction

from bookings.services import booking_create
from tenants.choices import Role
from tenants.services import membership_grant
from tests.factories import GuestFactory, UserFactory


class SmsGateway:
    """A real HTTP server on loopback standing in for the SMS provider."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.replies: list[int] = []  # status codes to answer, in order; then 200
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                gateway.requests.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers),
                        "json": json.loads(self.rfile.read(length) or b"{}"),
                    }
                )
                code = gateway.replies.pop(0) if gateway.replies else 200
                body = json.dumps({"id": f"sms-{len(gateway.requests)}"}).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/sms"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> SmsGateway:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sms_gateway(settings: Any) -> Iterator[SmsGateway]:
    with SmsGateway() as gateway:
        settings.SMS_BACKEND = "automation.sms.HttpGatewaySmsBackend"
        settings.SMS_GATEWAY_URL = gateway.url
        settings.SMS_GATEWAY_API_KEY = "test-key"
        settings.SMS_GATEWAY_TIMEOUT = 2
        yield gateway


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
    user = UserFactory(username=f"{world.tenant.slug}-{name}")
    membership_grant(user=user, tenant=world.tenant, role=Role.CLEANER)
    return user


def book(world: Any, check_in: date, check_out: date, *, prop: Any = None, **kwargs: Any) -> Any:
    with transaction.atomic():
        return booking_create(
            tenant=world.tenant,
            property=prop or world.property,
            guest=kwargs.pop("guest", None) or GuestFactory(tenant=world.tenant),
            check_in=check_in,
            check_out=check_out,
            **kwargs,
        )
