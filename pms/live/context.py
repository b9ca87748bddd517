"""The live server's address, for the admin's pages (config.settings TEMPLATES)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def live(request: HttpRequest) -> dict[str, object]:
    return {
        "live_updates": settings.LIVE_UPDATES,
        "live_url": settings.LIVE_URL,
        "live_port": settings.LIVE_PORT,
    }
