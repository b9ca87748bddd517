"""Guest-token authentication and throttles for the guest API."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, throttling
from rest_framework.request import Request

from bookings.models import GuestAccessToken
from bookings.services import guest_token_resolve
from pms.pipeline.log_context import bind_tenant


class GuestPrincipal:
    """Stands in for request.user: a guest holding a token for one booking."""

    is_authenticated = True
    is_anonymous = False
    pk = None

    def __init__(self, token: GuestAccessToken) -> None:
        self.token = token
        self.booking = token.booking


class GuestTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer <token>`` (or ``?token=`` from the emailed link)."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[GuestPrincipal, GuestAccessToken] | None:
        raw = self._raw_token(request)
        if raw is None:
            return None
        token = guest_token_resolve(raw_token=raw)
        if token is None:
            raise exceptions.AuthenticationFailed(
                "This booking token is invalid, expired or was revoked."
            )
        bind_tenant(token.tenant_id)  # the guest's requests log under their host's tenant
        return GuestPrincipal(token), token

    def _raw_token(self, request: Request) -> str | None:
        header = request.headers.get("Authorization", "")
        if header.startswith(f"{self.keyword} "):
            return header[len(self.keyword) + 1 :].strip() or None
        return request.query_params.get("token") or None

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class GuestTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "bookings.api.auth.GuestTokenAuthentication"
    name = "guestToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "The secret booking token from the booking response or email. It stops "
                "working some days after check-out (GUEST_TOKEN_DAYS_AFTER_CHECKOUT), when "
                "the host revokes it, or when newer links replace it."
            ),
        }


def client_address(request: Request) -> str:
    """The caller's address for throttles and idempotency scopes.

    ``X-Forwarded-For`` is trusted only as far as ``API_TRUSTED_PROXIES``
    (``REST_FRAMEWORK["NUM_PROXIES"]``) reaches: with none, it is ignored and the
    socket's address counts, so a rotating header does not make a new client.
    """
    return str(throttling.BaseThrottle().get_ident(request))


class AnonymousClientThrottle(throttling.AnonRateThrottle):
    scope = "anon"

    def get_rate(self) -> str:
        return settings.API_THROTTLE_ANON


class GuestTokenThrottle(throttling.SimpleRateThrottle):
    """Per booking token, whatever address the requests come from."""

    scope = "guest_token"

    def get_rate(self) -> str:
        return settings.API_THROTTLE_GUEST_TOKEN

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        token = request.auth
        if not isinstance(token, GuestAccessToken):
            return None
        return self.cache_format % {"scope": self.scope, "ident": token.token_hash[:32]}


class BookingCreateThrottle(throttling.SimpleRateThrottle):
    scope = "booking_create"

    def get_rate(self) -> str:
        return settings.API_THROTTLE_BOOKING_CREATE

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if request.method != "POST":
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
