"""Where a fault run's external effects land: every email, SMS, webhook and channel push.

The unique keys in PostgreSQL make a second calendar entry or ledger line impossible, so
counting those counts nothing. What can really happen twice leaves the machine: an email,
an SMS, a webhook, a push. A run points each at a receiver of its own on loopback that
records everything it gets:

- a real SMTP server (aiosmtpd), keyed by the ``Message-ID`` the sender sets per message;
- one HTTP receiver for the SMS gateway (``Idempotency-Key``: the message's key), the
  webhook subscription (``X-PMS-Event-Id``) and the channels' pushes (path per channel,
  ``Idempotency-Key``: the update's event id).

``landing_report`` then compares what the database says was sent (or should have been)
with what arrived: per kind, received once, twice (or more), never. A message whose
worker died between "sending" and "sent" is parked as *outcome unknown* for staff to
check with the recipient (automation.services.outbound): it may have arrived once or
never, so it is listed apart, not counted as never received.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from testkit.processes import free_port

KINDS = ("guest email", "manager email", "cleaner email", "sms", "webhook", "push")
MANAGER_EMAIL = "manager@faults.example.test"
CLEANER_EMAIL = "cleaner@faults.example.test"
GUEST_EMAIL = "guest@faults.example.test"
GUEST_PHONE = "+4915100000000"
PUSH_CHANNELS = 10  # the first homes get an API channel each


class _SmtpHandler:
    def __init__(self, seen: Counter[str]) -> None:
        self.seen = seen
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message_id = str(message_from_bytes(envelope.content).get("Message-ID", "")).strip()
        with self.lock:
            self.seen[message_id] += 1
        return "250 OK"


@dataclass
class Sinks:
    """The run's receivers. ``env()`` points the project's settings at them."""

    emails: Counter[str] = field(default_factory=Counter)
    http: Counter[tuple[str, str]] = field(default_factory=Counter)  # (path, key)
    smtp_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)

    def start(self) -> None:
        self._smtp = Controller(
            _SmtpHandler(self.emails), hostname="127.0.0.1", port=self.smtp_port
        )
        self._smtp.start()
        sinks = self

        class Receiver(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                key = self.headers.get("Idempotency-Key") or self.headers.get("X-PMS-Event-Id")
                with lock:
                    sinks.http[(self.path, key or "")] += 1
                body = b'{"id": "accepted"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", self.http_port), Receiver)
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._smtp.stop()
        self._http.shutdown()
        self._http.server_close()

    def env(self) -> dict[str, str]:
        return {
            "EMAIL_URL": f"smtp://127.0.0.1:{self.smtp_port}",
            "SMS_GATEWAY_URL": self.url("/sms"),
            "SMS_GATEWAY_API_KEY": "faults",
        }

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.http_port}{path}"


def landing_world(tenant: Any, properties: list[Any], sinks: Sinks) -> None:
    """A manager and a cleaner with email, an SMS on every confirmed booking, a webhook for
    every new booking, and an API channel on the first homes: every kind of message."""
    from django.contrib.auth import get_user_model

    from automation.choices import MessageChannel, TemplateTrigger
    from automation.models import MessageTemplate
    from channelsync.choices import ChannelKind
    from channelsync.services import channel_create
    from channelsync.services.webhooks import webhook_subscription_create
    from tenants.choices import Role
    from tenants.services import membership_grant

    users = get_user_model().objects
    manager = users.create_user("faults-manager", MANAGER_EMAIL, "faults-only-password-1")
    cleaner = users.create_user("faults-cleaner", CLEANER_EMAIL, "faults-only-password-2")
    membership_grant(user=manager, tenant=tenant, role=Role.MANAGER)
    membership_grant(user=cleaner, tenant=tenant, role=Role.CLEANER)
    MessageTemplate.objects.create(
        tenant=tenant,
        name="Confirmation SMS",
        trigger=TemplateTrigger.BOOKING_CONFIRMED,
        channel=MessageChannel.SMS,
        body="Your booking {{ booking.reference }} at {{ property.name }} is confirmed.",
    )
    webhook_subscription_create(
        tenant=tenant, url=sinks.url("/hook"), event_types=["booking.created"], send_test=False
    )
    for prop in properties[:PUSH_CHANNELS]:
        channel_create(
            tenant=tenant,
            property=prop,
            name=f"API {prop.pk}",
            kind=ChannelKind.PUSH_API,
            push_url=sinks.url(f"/push/{prop.pk}"),
        )


def _classify(
    expected: dict[Any, str], received: Counter[Any], unknown: set[Any]
) -> dict[str, Any]:
    """``expected``: key -> kind of every message that should arrive once."""
    report: dict[str, Any] = {
        kind: {"once": 0, "twice": 0, "never": 0, "outcome_unknown": []} for kind in KINDS
    }
    for key, kind in expected.items():
        row = report[kind]
        count = received.get(key, 0)
        if count >= 2:
            row["twice"] += 1  # parked or not: it was received twice
        elif key in unknown:
            row["outcome_unknown"].append({"key": str(key), "received": count})
        elif count == 1:
            row["once"] += 1
        else:
            row["never"] += 1
    return report


def landing_report(sinks: Sinks) -> dict[str, Any]:
    from django.db.models import Q
    from django.utils import timezone

    from automation.choices import MessageChannel, OutboundStatus
    from automation.models import OutboundMessage
    from channelsync.models import ChannelUpdate, WebhookDelivery

    expected: dict[Any, str] = {}
    received: Counter[Any] = Counter()
    unknown: set[Any] = set()
    not_due = Q(status=OutboundStatus.SCHEDULED, send_after__gt=timezone.now())
    messages = (
        OutboundMessage.objects.exclude(status=OutboundStatus.CANCELLED).exclude(not_due)
    ).values_list("pk", "channel", "recipient", "idempotency_key", "status", "last_error")
    for pk, channel, recipient, key, status, error in messages:
        if channel == MessageChannel.SMS:
            sink_key: Any = ("/sms", key)
            kind = "sms"
        else:
            sink_key = f"<outbound-{pk}@pms.localhost>"
            kind = {MANAGER_EMAIL: "manager email", CLEANER_EMAIL: "cleaner email"}.get(
                recipient, "guest email"
            )
        expected[sink_key] = kind
        if status == OutboundStatus.SENDING or (
            status == OutboundStatus.FAILED and "outcome" in (error or "")
        ):
            unknown.add(sink_key)
    for event_id in WebhookDelivery.objects.values_list("event_id", flat=True):
        expected[("/hook", str(event_id))] = "webhook"
    pushed = ChannelUpdate.objects.exclude(status="superseded").values_list(
        "channel__property_id", "event_id"
    )
    for property_id, event_id in pushed:
        expected[(f"/push/{property_id}", str(event_id))] = "push"
    received.update(sinks.emails)
    received.update(sinks.http)
    report = _classify(expected, received, unknown)
    strays = sum(1 for key in received if key not in expected)
    return {"landing": report, "landing_strays": strays}


def landing_totals(report: dict[str, Any]) -> tuple[int, int, int]:
    """(received twice, never received, parked as outcome unknown) over every kind."""
    rows = report["landing"].values()
    return (
        sum(row["twice"] for row in rows),
        sum(row["never"] for row in rows),
        sum(len(row["outcome_unknown"]) for row in rows),
    )


def print_landing(report: dict[str, Any]) -> None:
    print(f"{'where it landed':<16}{'once':>8}{'twice':>8}{'never':>8}{'unknown':>9}")
    for kind in KINDS:
        row = report["landing"][kind]
        unknown = len(row["outcome_unknown"])
        print(f"{kind:<16}{row['once']:>8}{row['twice']:>8}{row['never']:>8}{unknown:>9}")
        for parked in row["outcome_unknown"]:
            print(f"    outcome unknown: {parked['key']} (received {parked['received']}x)")
    if report.get("worker_restarts"):
        print(f"    workers that exited and were started again: {report['worker_restarts']}")
    if report.get("landing_strays"):
        print(f"    {report['landing_strays']} received that the database does not know of")
