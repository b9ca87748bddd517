"""Every API error is JSON: ``{"error": {"code": ..., "message": ..., "fields": {...}}}``."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponsePermanentRedirect,
    JsonResponse,
)
from django.urls import Resolver404, resolve
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from pms.errors import DomainError


def _code_of(exc: exceptions.APIException) -> str:
    codes = exc.get_codes()
    if isinstance(codes, str):
        return codes
    return "invalid"


# HTTP status per domain error code; any other code is a 400.
ERROR_STATUS = {
    "unavailable": status.HTTP_409_CONFLICT,
    "invalid_transition": status.HTTP_409_CONFLICT,
    "not_modifiable": status.HTTP_409_CONFLICT,
    "booked_elsewhere": status.HTTP_409_CONFLICT,
    "not_found": status.HTTP_404_NOT_FOUND,
    "booking_limit_property": status.HTTP_429_TOO_MANY_REQUESTS,
    "booking_limit_guest": status.HTTP_429_TOO_MANY_REQUESTS,
}


def domain_error_response(exc: DomainError) -> Response:
    """A service's refusal as the API's JSON error; its field, if any, under ``fields``."""
    fields = {exc.field: [exc.message]} if exc.field else None
    return error_response(exc.code, exc.message, ERROR_STATUS.get(exc.code, 400), fields)


def json_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        return domain_error_response(exc)
    if isinstance(exc, DjangoValidationError):
        code = getattr(exc, "code", None) or "invalid"  # set only on a single-message error
        message = "; ".join(exc.messages)
        return Response(
            {"error": {"code": code, "message": message}}, status=status.HTTP_400_BAD_REQUEST
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return None
    assert isinstance(exc, exceptions.APIException)
    if isinstance(exc, exceptions.ValidationError):
        body = {
            "code": "invalid",
            "message": "The request has invalid fields.",
            "fields": exc.detail,
        }
    else:
        body = {"code": _code_of(exc), "message": str(exc.detail)}
    response.data = {"error": body}
    return response


def error_response(
    code: str, message: str, status_code: int, fields: dict[str, Any] | None = None
) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return Response({"error": body}, status=status_code)


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def _json_not_found() -> JsonResponse:
    return JsonResponse({"error": {"code": "not_found", "message": "Not found."}}, status=404)


def not_found_view(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler404: JSON under /api/ (a malformed id matches no route); else Django's page."""
    if _is_api(request):
        return _json_not_found()
    return defaults.page_not_found(request, exception or Http404())


def api_not_found_view(request: HttpRequest, unmatched: str = "") -> HttpResponse:
    """The last URL pattern under ``api/``: what no API route matched is a JSON 404.

    handler404 alone is not enough: with DEBUG on, Django answers an unmatched URL
    with its HTML technical 404 and never calls handler404. Matching every other
    ``/api/...`` path also hides it from CommonMiddleware's APPEND_SLASH redirect,
    so that redirect is kept here, for GET and HEAD, as Django would do it.
    """
    path = request.path_info
    if settings.APPEND_SLASH and not path.endswith("/") and request.method in ("GET", "HEAD"):
        try:
            match = resolve(f"{path}/", getattr(request, "urlconf", None))
        except Resolver404:
            match = None
        if match is not None and match.func is not api_not_found_view:
            return HttpResponsePermanentRedirect(request.get_full_path(force_append_slash=True))
    return _json_not_found()


def server_error_view(request: HttpRequest) -> HttpResponse:
    """handler500: an API client gets JSON it can parse, with no internals."""
    if _is_api(request):
        return JsonResponse(
            {"error": {"code": "server_error", "message": "Something went wrong; it was logged."}},
            status=500,
        )
    return defaults.server_error(request)
