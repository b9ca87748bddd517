"""What every app's guest-API endpoints share: the error responses and the booking-token base.

A guest proves which booking they hold with a secret token. Issuing and checking tokens
is the bookings app's business: it sets the authentication and throttles here
(``guest_access_configure``, from its ``AppConfig.ready``), so another app's guest
endpoint (automation's maintenance report) subclasses ``GuestBookingAPIView`` and
imports nothing of bookings but its models.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.http import Http404
from rest_framework import permissions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from pms.api.errors import error_response
from pms.api.schemas import ErrorSerializer

# The error responses of a guest endpoint, for its OpenAPI schema.
ERRORS = {
    400: ErrorSerializer,
    401: ErrorSerializer,
    404: ErrorSerializer,
    409: ErrorSerializer,
    413: ErrorSerializer,
    429: ErrorSerializer,
}

_authentication_classes: list[type[BaseAuthentication]] = []
_throttle_classes: list[type[BaseThrottle]] = []


def invalid_response(serializer: Any) -> Response:
    return error_response("invalid", "The request has invalid fields.", 400, serializer.errors)


def guest_access_configure(
    *,
    authentication_classes: Sequence[type[BaseAuthentication]],
    throttle_classes: Sequence[type[BaseThrottle]],
) -> None:
    """Set how a guest endpoint knows the guest (the authenticated user has ``.booking``)."""
    _authentication_classes[:] = authentication_classes
    _throttle_classes[:] = throttle_classes


class GuestBookingAPIView(APIView):
    """Endpoints that take the booking token; another booking's token answers 404."""

    permission_classes = [permissions.IsAuthenticated]

    def get_authenticators(self) -> list[BaseAuthentication]:
        if not _authentication_classes:
            raise ImproperlyConfigured(
                "No guest authentication configured (bookings sets it in AppConfig.ready)."
            )
        return [authentication() for authentication in _authentication_classes]

    def get_throttles(self) -> list[BaseThrottle]:
        return [throttle() for throttle in _throttle_classes]

    def booking(self, request: Request, reference: str) -> Any:
        """The booking the token opens, if it is the one the URL names."""
        booking = getattr(request.user, "booking", None)
        if booking is None or booking.reference != reference:
            raise Http404("No such booking.")  # never confirm another booking exists
        return booking
