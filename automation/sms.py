"""Sending SMS: a small backend interface, an HTTP gateway, and a console backend.

``SMS_BACKEND`` (dotted path) picks the backend; development defaults to the
console. The HTTP gateway takes ``SMS_GATEWAY_URL`` and ``SMS_GATEWAY_API_KEY``
and receives one JSON POST per message with an ``Idempotency-Key`` header
(the message's key), so a gateway that honours it never sends twice even if
our outcome write is lost. 5xx, 429 and network errors are transient (the
task retries, 429 honours Retry-After); any other 4xx is permanent.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from dataclasses import dataclass
from typing import Protocol

import requests
from django.conf import settings
from django.utils.module_loading import import_string

from pms.pipeline.errors import PermanentError, TransientError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SmsResult:
    provider_id: str = ""


class SmsBackend(Protocol):
    def send(self, *, to: str, body: str, idempotency_key: str) -> SmsResult: ...


class ConsoleSmsBackend:
    """Development: write the SMS to stdout."""

    def send(self, *, to: str, body: str, idempotency_key: str) -> SmsResult:
        sys.stdout.write(f"SMS to {to} [{idempotency_key}]\n{body}\n{'-' * 40}\n")
        sys.stdout.flush()
        return SmsResult(provider_id=f"console:{idempotency_key}")


class HttpGatewaySmsBackend:
    """A generic HTTP SMS gateway: ``POST {url}`` with ``{"to", "body"}`` as JSON."""

    def __init__(
        self, *, url: str | None = None, api_key: str | None = None, timeout: float | None = None
    ) -> None:
        self.url = url if url is not None else settings.SMS_GATEWAY_URL
        self.api_key = api_key if api_key is not None else settings.SMS_GATEWAY_API_KEY
        self.timeout = timeout if timeout is not None else settings.SMS_GATEWAY_TIMEOUT
        if not self.url:
            raise PermanentError("SMS_GATEWAY_URL is not set")

    def send(self, *, to: str, body: str, idempotency_key: str) -> SmsResult:
        try:
            response = requests.post(
                self.url,
                json={"to": to, "body": body, "sender": settings.SMS_SENDER_ID},
                headers={
                    "Authorization": f"Bearer {self.api_key}",
                    "Idempotency-Key": idempotency_key,
                },
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            # Connection refused, timeout, reset: the gateway may be back later.
            raise TransientError(f"SMS gateway unreachable: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            retry_after = _retry_after(response.headers.get("Retry-After"))
            raise TransientError(
                f"SMS gateway answered HTTP {response.status_code}", retry_after=retry_after
            )
        if response.status_code >= 300:
            raise PermanentError(
                f"SMS gateway refused the message: HTTP {response.status_code} "
                f"{response.text[:200]}"
            )
        provider_id = ""
        with contextlib.suppress(ValueError, AttributeError):
            provider_id = str(response.json().get("id", ""))
        return SmsResult(provider_id=provider_id)


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def get_sms_backend() -> SmsBackend:
    backend: SmsBackend = import_string(settings.SMS_BACKEND)()
    return backend
