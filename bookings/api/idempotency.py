"""``Idempotency-Key`` for POSTs that create things.

The same key with the same request returns the first response (status and
body) without doing the work again; with a different request it is refused
(422); while the first request is still running a repeat gets 409. Keys live
``IDEMPOTENCY_KEY_TTL`` (24 h) and beat purges them after that.

What a key can reach:
- **Scope.** A key belongs to its client: a signed-in user, or for anonymous
  callers the client's address (``bookings.api.auth.client_address``, which only
  trusts ``X-Forwarded-For`` from ``API_TRUSTED_PROXIES``) together with a
  subject the view names (the guest's email for a booking). Two guests who pick
  the same key each get their own booking; a stranger who guesses a key reads
  nothing and blocks nothing, because the scope is a keyed hash the stranger
  cannot reproduce from another address.
- **Storage.** Neither the key nor the answer is stored readable: the row holds
  an HMAC of the key, and the answer (which carries the guest's secret token)
  sealed with a key derived from the Idempotency-Key itself and ``SECRET_KEY``.
  A database dump alone opens nothing. The repeat, which by definition sends
  the same key, gets the same answer back, token included: the client that lost
  the first response needs that token, and minting a new one per replay would
  multiply live tokens.
- **Lease.** A claim whose request has not answered within
  ``IDEMPOTENCY_CLAIM_LEASE`` (the web timeout: its worker is dead) is taken over
  by the next repeat. The original request, should it still finish, sees that it
  lost the claim and rolls back its work instead of answering twice.
- **Fingerprint.** The validated request (``"guests": 2`` and ``"guests": "2"``
  are one request), not the raw body.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from bookings.api.auth import client_address
from bookings.models import IdempotencyKey
from pms.api.errors import error_response

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


class _ClaimLost(Exception):
    """Our claim was taken over (we ran past the lease): roll back, answer nothing."""


def _mac(*parts: str) -> str:
    message = "\x1f".join(parts).encode()
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()


def fingerprint(request: Request, validated: Mapping[str, Any]) -> str:
    """Method, path and the *validated* data: equal after validation is the same request."""
    body = json.dumps(validated, sort_keys=True, cls=JSONEncoder, separators=(",", ":"))
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def client_scope(request: Request, subject: str = "") -> str:
    user = getattr(request, "user", None)
    user_pk = getattr(user, "pk", None)
    if getattr(user, "is_authenticated", False) and user_pk is not None:
        return f"user:{user_pk}"
    return "anon:" + _mac("scope", client_address(request), subject.strip().lower())[:40]


def _sealer(raw_key: str, scope: str) -> Fernet:
    derived = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=hashlib.sha256(settings.SECRET_KEY.encode()).digest(),
        info=f"pms idempotent answer\x1f{scope}".encode(),
    ).derive(raw_key.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def _seal(raw_key: str, scope: str, data: Any) -> dict[str, str]:
    plain = json.dumps(data, cls=JSONEncoder).encode()
    return {"sealed": _sealer(raw_key, scope).encrypt(plain).decode()}


def _unseal(raw_key: str, scope: str, stored: Any) -> Any:
    if not isinstance(stored, dict) or "sealed" not in stored:
        raise InvalidToken
    return json.loads(_sealer(raw_key, scope).decrypt(stored["sealed"].encode()))


def idempotent(
    request: Request,
    *,
    serializer: serializers.Serializer,
    work: Callable[[dict[str, Any]], Response],
    subject: Callable[[dict[str, Any]], str] = lambda data: "",
) -> Response:
    """Validate with ``serializer``, then run ``work(validated_data)`` once per key.

    Invalid input answers 400 without touching the key: validation is deterministic,
    so a repeat gets the same 400 anyway.
    """
    raw_key = (request.headers.get(HEADER) or "").strip()
    if not raw_key:
        return error_response(
            "idempotency_key_required",
            f"Send an {HEADER} header (e.g. a UUID) with this request.",
            400,
        )
    if len(raw_key) > MAX_KEY_LENGTH:
        return error_response(
            "idempotency_key_invalid", f"{HEADER} is at most {MAX_KEY_LENGTH} characters.", 400
        )
    if not serializer.is_valid():
        return error_response("invalid", "The request has invalid fields.", 400, serializer.errors)
    data = serializer.validated_data
    scope = client_scope(request, subject(data))
    key_digest = _mac("key", scope, raw_key)
    request_fingerprint = fingerprint(request, data)
    claim = _claim(scope, key_digest, request_fingerprint)
    if claim is None:
        return _repeat(scope, key_digest, raw_key, request_fingerprint)
    record_id, claimed_at = claim
    mine = IdempotencyKey.objects.filter(pk=record_id, created_at=claimed_at, completed=False)

    try:
        # The answer is stored in the work's own transaction: a booking never
        # commits without the answer its key replays (one commit, not two).
        with transaction.atomic():
            response = work(data)
            if response.status_code < 500:
                updated = mine.update(
                    completed=True,
                    response_status=response.status_code,
                    response_body=_seal(raw_key, scope, response.data),
                )
                if updated != 1:
                    raise _ClaimLost
    except _ClaimLost:
        return _in_progress()
    except BaseException:
        # Nothing was answered: let the client try again with the same key.
        mine.delete()
        raise
    if response.status_code >= 500:
        mine.delete()
    return response


_CLAIM = f"""
    INSERT INTO {IdempotencyKey._meta.db_table}
        (scope, key, fingerprint, completed, response_status, response_body, created_at)
    VALUES (%(scope)s, %(key)s, %(fingerprint)s, false, NULL, NULL, %(now)s)
    ON CONFLICT (scope, key) DO UPDATE
        SET fingerprint = EXCLUDED.fingerprint, completed = false, response_status = NULL,
            response_body = NULL, created_at = EXCLUDED.created_at
        WHERE {IdempotencyKey._meta.db_table}.created_at < %(expired_before)s
           OR (NOT {IdempotencyKey._meta.db_table}.completed
               AND {IdempotencyKey._meta.db_table}.created_at < %(lease_before)s)
    RETURNING id, created_at
"""


def _claim(scope: str, key_digest: str, request_fingerprint: str) -> tuple[int, datetime] | None:
    """Take the key in one statement: a new key, an expired one (as good as new), or a
    claim whose lease ran out (its request died with its worker).

    Returns the record's id and claim time (the claim's identity: a takeover changes
    it), or None when a live record holds the key (a repeat).
    """
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            _CLAIM,
            {
                "scope": scope,
                "key": key_digest,
                "fingerprint": request_fingerprint,
                "now": now,
                "expired_before": now - settings.IDEMPOTENCY_KEY_TTL,
                "lease_before": now - settings.IDEMPOTENCY_CLAIM_LEASE,
            },
        )
        row = cursor.fetchone()
    return (int(row[0]), now) if row else None


def _in_progress() -> Response:
    return error_response(
        "request_in_progress",
        f"A request with this {HEADER} is still being processed; retry shortly.",
        409,
    )


def _repeat(scope: str, key_digest: str, raw_key: str, request_fingerprint: str) -> Response:
    record = IdempotencyKey.objects.filter(scope=scope, key=key_digest).first()
    if record is None:  # purged between our insert attempt and now: ask for a retry
        return error_response("request_in_progress", "Retry this request.", 409)
    if record.fingerprint != request_fingerprint:
        return error_response(
            "idempotency_key_reused",
            f"This {HEADER} was already used with a different request.",
            422,
        )
    if not record.completed:
        return _in_progress()
    try:
        body = _unseal(raw_key, scope, record.response_body)
    except InvalidToken:  # sealed under another SECRET_KEY: the answer is gone
        return error_response(
            "replay_unavailable",
            f"The first answer to this {HEADER} can no longer be replayed; use a new key.",
            409,
        )
    response = Response(body, status=record.response_status)
    response["Idempotent-Replayed"] = "true"
    return response


def idempotency_keys_purge() -> int:
    cutoff = timezone.now() - settings.IDEMPOTENCY_KEY_TTL
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()
    return deleted
