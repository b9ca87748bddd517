"""Helpers shared by the monitoring tests (real servers only)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection

from testkit.processes import free_port
from tests.support.servers import SmtpSink


def smtp_settings(mailbox: SmtpSink, **extra: Any) -> dict[str, Any]:
    """Settings that send Django's mail to the test's real SMTP sink."""
    return {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": mailbox.port,
        "EMAIL_USE_TLS": False,
        "EMAIL_USE_SSL": False,
        "EMAIL_HOST_USER": "",
        "EMAIL_HOST_PASSWORD": "",
        "OPS_ALERT_EMAILS": ["oncall@example.test"],
        **extra,
    }


def ops_mail(mailbox: SmtpSink, state: str) -> list[dict[str, Any]]:
    return [m for m in mailbox.messages if f"[PMS ops] {state}" in str(m["data"])]


@contextmanager
def database_down() -> Iterator[None]:
    """The default connection points at a port where no PostgreSQL listens (a real
    connection failure), then back. Only for ``transaction=True`` tests."""
    original = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = free_port()
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict["PORT"] = original
