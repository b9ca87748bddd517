"""The live server (the Procfile's ``live``): WebSocket connections of the open admin pages.

Plain HTTP stays with gunicorn (config.wsgi); this process only holds the pages'
connections (pms.live); HTTP sent to it gets the same Django application. The
WebSocket handshake must come from an allowed host (``ALLOWED_HOSTS``) and carry the
admin's session cookie.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_application = get_asgi_application()

# Imported after Django is set up: they import models.
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402

from pms.live.consumer import LiveConsumer  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter([path("live/", LiveConsumer.as_asgi())]))
        ),
    }
)
