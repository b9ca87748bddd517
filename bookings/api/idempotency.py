"""``Idempotency-Key`` for POSTs that create things.

The same key with the same request returns the first response (status and
body) without doing the work again; with a different request it is refused;
while the first request is still running a repeat gets 409. Keys live
``IDEMPOTENCY_KEY_TTL`` (24 h) and beat purges them after that.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from bookings.models import IdempotencyKey
from pms.api.errors import error_response

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


def _fingerprint(request: Request) -> str:
    body = json.dumps(request.data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def _scope(request: Request) -> str:
    user = getattr(request, "user", None)
    if getattr(user, "is_authenticated", False) and getattr(user, "pk", None) is not None:
        return f"user:{user.pk}"
    return "anonymous"


def idempotent(request: Request, work: Callable[[], Response]) -> Response:
    key = (request.headers.get(HEADER) or "").strip()
    if not key:
        return error_response(
            "idempotency_key_required",
            f"Send an {HEADER} header (e.g. a UUID) with this request.",
            400,
        )
    if len(key) > MAX_KEY_LENGTH:
        return error_response(
            "idempotency_key_invalid", f"{HEADER} is at most {MAX_KEY_LENGTH} characters.", 400
        )
    scope, fingerprint = _scope(request), _fingerprint(request)
    record_id = _claim(scope, key, fingerprint)
    if record_id is None:
        return _repeat(scope, key, fingerprint)

    try:
        # The answer is stored in the work's own transaction: a booking never
        # commits without the answer its key replays (one commit, not two).
        with transaction.atomic():
            response = work()
            if response.status_code < 500:
                IdempotencyKey.objects.filter(pk=record_id).update(
                    completed=True,
                    response_status=response.status_code,
                    response_body=response.data,
                )
    except BaseException:
        # Nothing was answered: let the client try again with the same key.
        IdempotencyKey.objects.filter(pk=record_id).delete()
        raise
    if response.status_code >= 500:
        IdempotencyKey.objects.filter(pk=record_id).delete()
    return response


_CLAIM = f"""
    INSERT INTO {IdempotencyKey._meta.db_table}
        (scope, key, fingerprint, completed, response_status, response_body, created_at)
    VALUES (%(scope)s, %(key)s, %(fingerprint)s, false, NULL, NULL, %(now)s)
    ON CONFLICT (scope, key) DO UPDATE
        SET fingerprint = EXCLUDED.fingerprint, completed = false, response_status = NULL,
            response_body = NULL, created_at = EXCLUDED.created_at
        WHERE {IdempotencyKey._meta.db_table}.created_at < %(expired_before)s
    RETURNING id
"""


def _claim(scope: str, key: str, fingerprint: str) -> int | None:
    """Take the key in one statement: a new key, or an expired one (as good as new).

    Returns the record's id, or None when a live record holds the key (a repeat).
    """
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            _CLAIM,
            {
                "scope": scope,
                "key": key,
                "fingerprint": fingerprint,
                "now": now,
                "expired_before": now - settings.IDEMPOTENCY_KEY_TTL,
            },
        )
        row = cursor.fetchone()
    return int(row[0]) if row else None


def _repeat(scope: str, key: str, fingerprint: str) -> Response:
    record = IdempotencyKey.objects.filter(scope=scope, key=key).first()
    if record is None:  # purged between our insert attempt and now: ask for a retry
        return error_response("request_in_progress", "Retry this request.", 409)
    if record.fingerprint != fingerprint:
        return error_response(
            "idempotency_key_reused",
            f"This {HEADER} was already used with a different request.",
            422,
        )
    if not record.completed:
        return error_response(
            "request_in_progress",
            f"A request with this {HEADER} is still being processed; retry shortly.",
            409,
        )
    response = Response(record.response_body, status=record.response_status)
    response["Idempotent-Replayed"] = "true"
    return response


def idempotency_keys_purge() -> int:
    cutoff = timezone.now() - settings.IDEMPOTENCY_KEY_TTL
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()
    return deleted
