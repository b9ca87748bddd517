"""Loopback servers for channel-sync tests (a flaky SMTP, a trickling HTTP), and feeds in
the channels' shapes. The ordinary HTTP peer is tests/support/http_peer.py.

The feed shapes follow what the channels publish: Airbnb (``VALUE=DATE``,
"Reserved" / "Airbnb (Not available)", UIDs ``...@airbnb.com``), Booking.com
("CLOSED - Not available"), Vrbo/HomeAway ("Reserved - Name", "Blocked").
"""

from __future__ import annotations

import threading
import time
from datetime import date
from typing import Any

from testkit.processes import free_port


class FlakySmtp:
    """An aiosmtpd server on loopback that refuses (451) the next ``fail_next`` messages."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.fail_next = 0
        self.port = 0
        self.controller: Any = None

    def start(self) -> FlakySmtp:
        from aiosmtpd.controller import Controller

        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                if sink.fail_next > 0:
                    sink.fail_next -= 1
                    return "451 Requested action aborted: local error in processing"
                sink.messages.append(
                    {"to": list(envelope.rcpt_tos), "data": envelope.content.decode("utf8")}
                )
                return "250 Message accepted for delivery"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()


def _d(day: date) -> str:
    return day.strftime("%Y%m%d")


def _calendar(prodid: str, events: list[str], extra: str = "") -> bytes:
    lines = ["BEGIN:VCALENDAR", f"PRODID:{prodid}", "CALSCALE:GREGORIAN", "VERSION:2.0"]
    if extra:
        lines.append(extra)
    text = "\r\n".join(lines) + "\r\n" + "".join(events) + "END:VCALENDAR\r\n"
    return text.encode()


def airbnb_feed(*stays: tuple[str, date, date, str]) -> bytes:
    """stays: (uid, start, end, summary); summary "Reserved" or "Airbnb (Not available)"."""
    events = []
    for uid, start, end, summary in stays:
        events.append(
            "BEGIN:VEVENT\r\n"
            f"DTEND;VALUE=DATE:{_d(end)}\r\n"
            f"DTSTART;VALUE=DATE:{_d(start)}\r\n"
            f"UID:{uid}@airbnb.com\r\n"
            + (
                "DESCRIPTION:Reservation URL: https://www.airbnb.com/hosting/reservations/"
                "details/HMABCDEF12\\nPhone Number (Last 4 Digits): 1234\r\n"
                if summary == "Reserved"
                else ""
            )
            + f"SUMMARY:{summary}\r\n"
            "END:VEVENT\r\n"
        )
    return _calendar("-//Airbnb Inc//Hosting Calendar 0.8.8//EN", events, "METHOD:PUBLISH").replace(
        b"PRODID:", b"PRODID;X-RICAL-TZSOURCE=TZINFO:", 1
    )


def booking_com_feed(*stays: tuple[str, date, date]) -> bytes:
    events = [
        "BEGIN:VEVENT\r\n"
        f"UID:{uid}@booking.com\r\n"
        "DTSTAMP:20260101T000000Z\r\n"
        f"DTSTART;VALUE=DATE:{_d(start)}\r\n"
        f"DTEND;VALUE=DATE:{_d(end)}\r\n"
        "SUMMARY:CLOSED - Not available\r\n"
        "END:VEVENT\r\n"
        for uid, start, end in stays
    ]
    return _calendar("-//Booking.com//Booking.com Calendar//EN", events, "METHOD:PUBLISH")


def vrbo_feed(*stays: tuple[str, date, date, str]) -> bytes:
    events = [
        "BEGIN:VEVENT\r\n"
        f"UID:{uid}\r\n"
        "DTSTAMP:20260101T120000Z\r\n"
        f"DTSTART;VALUE=DATE:{_d(start)}\r\n"
        f"DTEND;VALUE=DATE:{_d(end)}\r\n"
        f"SUMMARY:{summary}\r\n"
        "END:VEVENT\r\n"
        for uid, start, end, summary in stays
    ]
    return _calendar("-//HomeAway.com, Inc.//EN", events)


class TricklingServer:
    """A loopback HTTP server that answers one byte every ``interval`` seconds.

    Each wait is short (no socket timeout fires); only a deadline on the whole
    exchange stops the client. ``answer`` is sent byte by byte from the first
    byte of the status line, for at most ``give_up_after`` seconds per connection.
    """

    def __init__(
        self,
        *,
        interval: float = 0.2,
        body: bytes = b"x" * 500,
        give_up_after: float = 30.0,
        headers_at_once: bool = False,
    ) -> None:
        import socket

        self.interval = interval
        self.answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        self.give_up_after = give_up_after
        # With headers_at_once the status line and headers go out at once and only the
        # body trickles (the read of the body is what must be cut).
        self.at_once = self.answer.index(b"\r\n\r\n") + 4 if headers_at_once else 0
        self.connections = 0
        self.closed_early = threading.Event()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> TricklingServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: Any) -> None:
        with conn:
            conn.settimeout(5)
            request = b""
            try:
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    request += chunk
                started = time.monotonic()
                if self.at_once:
                    conn.sendall(self.answer[: self.at_once])
                for index in range(self.at_once, len(self.answer)):
                    if self._stop.is_set() or time.monotonic() - started > self.give_up_after:
                        return
                    conn.sendall(self.answer[index : index + 1])
                    time.sleep(self.interval)
            except OSError:
                self.closed_early.set()  # the client hung up mid-answer
