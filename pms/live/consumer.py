"""The WebSocket end of a live page: who is looking, at which page, and what to push.

The browser opens ``/live/?path=<the page's path>&query=<its query>`` with its session
cookie (config.asgi: Channels' session and auth middleware, behind the allowed-hosts
origin check). The viewer's rights are read from the database on every connect, so
a page that reconnects after a membership changed is checked again. Only a page
registered as live (pms.live.pages) can be asked for, and only as its own view
would show it to this viewer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from pms.live.access import access_of
from pms.live.hub import CLOSE_NOT_SHOWN, CLOSE_SIGNED_OUT, Seat, hub
from pms.live.pages import live_page_at

CLOSE_NOT_LIVE = 4404
# A page's query as the browser sends it is short; a long one would be re-run on every
# render of its group (a failed-task search of thousands of terms, say).
MAX_QUERY_LENGTH = 1000
MAX_QUERY_PARAMETERS = 20


class LiveConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        # Refusals are sent after accepting, so the page's script reads why (a refused
        # handshake is only an HTTP 403 to it).
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            await self.close(code=CLOSE_SIGNED_OUT)
            return
        asked = parse_qs(self.scope.get("query_string", b"").decode("latin1"))
        path = (asked.get("path") or [""])[0]
        raw_query = (asked.get("query") or [""])[0].lstrip("?")
        parameters = parse_qsl(raw_query)
        query = urlencode(sorted(parameters))
        found = live_page_at(path) if path.startswith("/") and len(path) < 300 else None
        if (
            found is None
            or len(raw_query) > MAX_QUERY_LENGTH
            or len(parameters) > MAX_QUERY_PARAMETERS
        ):
            await self.close(code=CLOSE_NOT_LIVE)
            return
        if not user.is_staff:
            await self.close(code=CLOSE_NOT_SHOWN)
            return
        page, kwargs = found
        access = await database_sync_to_async(access_of, thread_sensitive=False)(user)
        session = self.scope.get("session")
        await hub.join(
            self,
            seat=Seat(user_id=user.pk, session_key=getattr(session, "session_key", None) or ""),
            page=page,
            kwargs=kwargs,
            path=path,
            query=query,
            host=_page_host(self.scope),
            access=access,
        )

    async def disconnect(self, code: int) -> None:
        hub.leave(self)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The page says nothing the server needs but a ping, which keeps proxies from
        closing; anything else (not JSON, bytes, too long) is ignored, never an error."""
        try:
            content = json.loads(text_data or "") if text_data and len(text_data) < 100 else None
        except ValueError:
            content = None
        if isinstance(content, dict) and content.get("ping"):
            await self.send_json({"pong": True})

    async def push(self, message: str) -> None:
        await self.send(text_data=message)


def _page_host(scope: Mapping[str, Any]) -> str:
    """The host the page was loaded from (the Origin the origin check let in)."""
    headers = dict(scope.get("headers") or [])
    origin = headers.get(b"origin", b"").decode("latin1")
    if origin:
        return urlsplit(origin).netloc
    return headers.get(b"host", b"localhost").decode("latin1")
