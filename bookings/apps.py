from __future__ import annotations

from django.apps import AppConfig


class BookingsConfig(AppConfig):
    name = "bookings"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here: the API modules need the app registry ready (they import models).
        from bookings.api.auth import (
            AnonymousClientThrottle,
            GuestTokenAuthentication,
            GuestTokenThrottle,
        )
        from pms.api.guest import guest_access_configure

        # Every app's guest endpoints know the guest by the booking token bookings issues.
        guest_access_configure(
            authentication_classes=[GuestTokenAuthentication],
            throttle_classes=[AnonymousClientThrottle, GuestTokenThrottle],
        )
