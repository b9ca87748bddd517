"""The live server (the Procfile's ``live``): WebSocket connections of the open admin pages.

Plain HTTP stays with gunicorn (config.wsgi): this process only holds the pages'
connections (pms.live), and to HTTP it answers ``/live/health`` (200 "ok", for
load balancers and the stack's checks) and 404 to anything else. The
WebSocket handshake must come from an allowed host (``ALLOWED_HOSTS``) and carry the
admin's session cookie.
"""

from __future__ import annotations

import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
get_asgi_application()  # sets Django up (the app registry) before the imports below

# Imported after Django is set up: they import models.
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402

from pms.live.consumer import LiveConsumer  # noqa: E402


async def http(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Only ``/live/health``: the admin and the API are gunicorn's, not this port's."""
    ok = scope.get("path") == "/live/health"
    body = b"ok" if ok else b"not found"
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200 if ok else 404, "headers": headers})
    await send({"type": "http.response.body", "body": body})


application = ProtocolTypeRouter(
    {
        "http": http,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter([path("live/", LiveConsumer.as_asgi())]))
        ),
    }
)
