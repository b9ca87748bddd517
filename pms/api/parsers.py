"""The API's JSON parser: bounded in size and nesting, and only text PostgreSQL can store.

DRF's ``JSONParser`` reads the whole body whatever its size, lets ``json`` recurse
until ``RecursionError`` (100,000 ``[`` answered 500) and accepts lone UTF-16
surrogates (``"\\ud800"``) that no database column can hold. Here a body over
``API_MAX_BODY_BYTES`` is a 413, deeper than ``API_MAX_JSON_DEPTH`` or with
unencodable text a 400; every answer is the usual JSON error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework import exceptions, status
from rest_framework.parsers import JSONParser


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "request_too_large"


class BoundedJSONParser(JSONParser):
    def parse(
        self,
        stream: IO[bytes] | None,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        limit = settings.API_MAX_BODY_BYTES
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and str(declared).isdigit() and int(declared) > limit:
            raise RequestTooLarge(f"The request body is larger than {limit} bytes.")
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise RequestTooLarge(f"The request body is larger than {limit} bytes.")
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = raw.decode(encoding)
            data = json.loads(text, parse_constant=_refuse_constant)
        except RecursionError:
            raise _too_deep() from None
        except ValueError as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
        _check(data)
        return data


def _refuse_constant(name: str) -> Any:
    # NaN and Infinity are not JSON (RFC 8259) and no decimal field takes them.
    raise ValueError(f"{name} is not valid JSON")


def _too_deep() -> exceptions.ParseError:
    return exceptions.ParseError(
        f"JSON nested deeper than {settings.API_MAX_JSON_DEPTH} levels.", code="too_deep"
    )


def _check(data: Any) -> None:
    """Depth and text checks without recursion (the input decides how deep it goes)."""
    max_depth = settings.API_MAX_JSON_DEPTH
    pending: list[tuple[Any, int]] = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            _check_text(value)
        elif isinstance(value, dict | list):
            if depth > max_depth:
                raise _too_deep()
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for name, item in items:
                if isinstance(name, str):
                    _check_text(name)
                pending.append((item, depth + 1))


def _check_text(value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise exceptions.ParseError(
            "JSON strings must be valid Unicode (no lone surrogates).", code="invalid_text"
        ) from None
