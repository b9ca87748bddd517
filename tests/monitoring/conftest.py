"""Fixtures for the monitoring tests: a real webhook receiver on loopback, clean counters."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from pms.monitoring.task_stats import forget_task_stats
from pms.monitoring.workers import forget_workers


class WebhookReceiver:
    """Records accepted POSTs in ``calls``; while ``failing``, answers 500 (counted in
    ``refused``) like a receiver that is down."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.refused = 0
        self.failing = False
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                if receiver.failing:
                    receiver.refused += 1
                    self.send_response(500)
                else:
                    receiver.calls.append(body)
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    receiver.start()
    yield receiver
    receiver.stop()


@pytest.fixture(autouse=True)
def _fresh_monitoring_state() -> Iterator[None]:
    forget_workers()
    forget_task_stats()
    yield
    forget_workers()
