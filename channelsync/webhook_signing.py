"""Outbound webhook signatures: Standard Webhooks, plus the old headers for one release.

Standard Webhooks (https://www.standardwebhooks.com/), which the receivers' own
libraries verify (``standardwebhooks`` for Python, ``standardwebhooks`` on npm,
Svix's libraries):

- ``webhook-id``: the event id (the same on every retry: receivers de-duplicate on it);
- ``webhook-timestamp``: Unix seconds;
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256(key, f"{id}.{timestamp}.{body}")>``.

The key is the base64 part of a ``whsec_...`` secret. Secrets of subscriptions
made before this (64 hex characters) are not changed: their Standard form is
``whsec_`` + base64 of the old secret's bytes (``standard_secret``), which is the
same HMAC key the old ``X-PMS-Signature`` used, so nothing is migrated and a
receiver can switch at its own pace. New subscriptions get ``whsec_`` secrets.

Deprecated, sent for one more release: ``X-PMS-Timestamp`` and
``X-PMS-Signature: v1=<hex HMAC-SHA256(secret as text, f"{timestamp}.{body}")>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"


def new_standard_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def standard_secret(secret: str) -> str:
    """The ``whsec_`` form of a subscription's secret (what a receiver configures)."""
    if secret.startswith(SECRET_PREFIX):
        return secret
    return SECRET_PREFIX + base64.b64encode(secret.encode()).decode()


def signing_key(secret: str) -> bytes:
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            pass  # not base64 after all: the text itself is the key
    return secret.encode()


def standard_signature(*, secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    mac = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return f"v1,{base64.b64encode(mac).decode()}"


def legacy_signature(*, secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def signed_headers(*, secret: str, msg_id: str, timestamp: str, body: bytes) -> dict[str, str]:
    """The signature headers of one delivery attempt (Standard and deprecated)."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": standard_signature(
            secret=secret, msg_id=msg_id, timestamp=timestamp, body=body
        ),
        "X-PMS-Timestamp": timestamp,
        "X-PMS-Signature": legacy_signature(secret=secret, timestamp=timestamp, body=body),
    }
