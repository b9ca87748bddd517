"""The one HTTP peer of the tests: a real threaded server on a free loopback port.

It answers from a route table and records every request. The transport is
pytest-httpserver's (werkzeug's threaded server); the routing is ours, so a test
states a peer as plainly as ``peer.routes["/hook"] = Reply(503)``:

- a ``Reply``: the answer to every request on that path;
- a list of ``Reply``: a script, one per request, the last one repeating;
- a callable ``Seen -> Reply``: for answers that depend on the request.

A path with no route answers 404. Routes match the path without its query string.
Loaded as a plugin by the root conftest: the ``peer`` fixture is a started peer.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest
from pytest_httpserver import METHOD_ALL, HTTPServer
from werkzeug import Request, Response
from werkzeug.datastructures import Headers

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

# werkzeug logs every request at INFO (and adds a stderr handler when none is set):
# the peer records requests itself, so only its warnings and errors are worth a line.
logging.getLogger("werkzeug").setLevel(logging.WARNING)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Seen:
    at: float
    method: str
    path: str  # as sent, with the query string
    headers: Headers  # case-insensitive, as HTTP header names are
    body: bytes


Route = Callable[[Seen], Reply]


class _AsGiven(Response):
    """Sends ``Location`` as the route gives it: werkzeug would rewrite it as a URI, and
    fail on what a test means to send (``http://127.0.0.1:99999/x``)."""

    def get_wsgi_headers(self, environ: WSGIEnvironment) -> Headers:
        location = self.headers.pop("Location", None)
        try:
            headers = super().get_wsgi_headers(environ)
        finally:
            if location is not None:
                self.headers["Location"] = location
        if location is not None:
            headers["Location"] = location
        return headers


class _QuickStopServer(HTTPServer):
    """pytest-httpserver's server, polling for shutdown every 50 ms instead of 500 ms: a
    peer per test otherwise costs half a second to stop (its documented hook for this)."""

    def thread_target(self) -> None:
        assert self.server is not None
        self.server.serve_forever(poll_interval=0.05)


class HttpPeer:
    """A loopback HTTP server answering from ``routes``, recording ``requests``."""

    def __init__(self) -> None:
        self.routes: dict[str, Route | Reply | list[Reply]] = {}
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        self._server = _QuickStopServer(host="127.0.0.1", port=0, threaded=True)
        self._server.expect_request(re.compile(".*"), method=METHOD_ALL).respond_with_handler(
            self._answer
        )

    @property
    def port(self) -> int:
        return int(self._server.port)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def hits(self, path: str) -> list[Seen]:
        with self._lock:
            return [seen for seen in self.requests if seen.path.split("?", 1)[0] == path]

    def start(self) -> HttpPeer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> HttpPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _answer(self, request: Request) -> Response:
        seen = Seen(
            at=time.monotonic(),
            method=request.method,
            path=request.environ.get("RAW_URI") or request.full_path.rstrip("?"),
            headers=Headers(request.headers),
            body=request.get_data(),
        )
        with self._lock:
            self.requests.append(seen)
        reply = self._reply(seen)
        if reply.delay:
            time.sleep(reply.delay)
        response = _AsGiven(reply.body, status=reply.status)
        # Only the headers the route gives (werkzeug would add a text/plain Content-Type).
        del response.headers["Content-Type"]
        for name, value in reply.headers.items():
            response.headers[name] = value
        return response

    def _reply(self, seen: Seen) -> Reply:
        path = seen.path.split("?", 1)[0]
        with self._lock:
            route = self.routes.get(path)
            if isinstance(route, list):
                return route.pop(0) if len(route) > 1 else route[0]
        if route is None:
            return Reply(404, b"not found")
        if isinstance(route, Reply):
            return route
        return route(seen)


@pytest.fixture
def peer() -> Iterator[HttpPeer]:
    with HttpPeer() as server:
        yield server
