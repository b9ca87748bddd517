"""Real servers the tests start and stop themselves, on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from testkit.processes import asgi_server_command, die_with_parent, free_port, wait_until

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


class CeleryWorker:
    """A real ``celery worker`` process consuming the given queues."""

    def __init__(
        self,
        *,
        queues: list[str],
        env: dict[str, str],
        concurrency: int = 2,
        name: str | None = None,
        pool: str | None = None,
    ) -> None:
        self.name = f"{name or 'test'}-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
        self.queues = queues
        self.env = env
        self.concurrency = concurrency
        self.pool = pool  # celery worker -P (prefork when None)
        self.process: subprocess.Popen[bytes] | None = None
        self.logfile = ARTIFACTS / f"worker-{self.name.split('@')[0]}.log"

    def start(self, app) -> None:  # type: ignore[no-untyped-def]
        self.spawn()
        self.wait_ready(app)

    def spawn(self) -> None:
        """Start the process; ``wait_ready`` waits for its first ping."""
        ARTIFACTS.mkdir(exist_ok=True)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-Q",
                ",".join(self.queues),
                "-n",
                self.name,
                "-c",
                str(self.concurrency),
                *(["-P", self.pool] if self.pool else []),
                "--include",
                "tests.support.fault_handlers",
                "--without-gossip",
                "--without-mingle",
                "-l",
                "INFO",
                "--logfile",
                str(self.logfile),
            ],
            env={**os.environ, **self.env, "CELERY_SKIP_CHECKS": "1"},
            cwd=Path(__file__).resolve().parents[2],
            preexec_fn=die_with_parent,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, app) -> None:  # type: ignore[no-untyped-def]
        wait_until(lambda: self.pinged(app), 60, interval=0.5, what=f"worker {self.name}")

    def pinged(self, app, timeout: float = 0.5) -> bool:  # type: ignore[no-untyped-def]
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"worker exited with {self.process.returncode}; see {self.logfile}")
        try:
            return bool(app.control.ping(destination=[self.name], timeout=timeout, limit=1))
        except Exception:
            return False

    def responsive(self, app, attempts: int = 3) -> bool:  # type: ignore[no-untyped-def]
        """Its main process answers a ping (a live but hung main process does not)."""
        return any(self.pinged(app, timeout=2) for _ in range(attempts))

    def child_pids(self) -> list[int]:
        import psutil

        assert self.process is not None
        return [child.pid for child in psutil.Process(self.process.pid).children()]

    def stop(self) -> None:
        """Warm shutdown; if it stalls, kill the pool children too, not only the parent
        (orphaned children would keep their database sessions open)."""
        self._finish_stop(self._begin_stop())

    def _begin_stop(self) -> list[Any]:
        """Ask for the warm shutdown (SIGTERM); returns the pool children to wait for."""
        import psutil

        if not self.process or self.process.poll() is not None:
            return []
        children = psutil.Process(self.process.pid).children(recursive=True)
        self.process.terminate()
        return children

    def _finish_stop(self, children: list[Any]) -> None:
        import psutil

        if self.process and self.process.poll() is None:
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        _gone, alive = psutil.wait_procs(children, timeout=5)
        for child in alive:
            child.kill()
        self.process = None


def start_workers(workers: list[CeleryWorker], app) -> None:  # type: ignore[no-untyped-def]
    """Start several workers side by side (each start is ~2 s of imports)."""
    for worker in workers:
        worker.spawn()
    for worker in workers:
        worker.wait_ready(app)


def stop_workers(workers: list[CeleryWorker]) -> None:
    """Warm shutdown of several workers side by side (each takes ~2 s, mostly Celery
    joining its pool)."""
    children = [worker._begin_stop() for worker in workers]
    for worker, its_children in zip(workers, children, strict=True):
        worker._finish_stop(its_children)


class SmtpSink:
    """A real SMTP server (aiosmtpd) on loopback that keeps what it receives."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[dict[str, object]] = []
        self.controller: Controller | None = None

    def start(self) -> None:
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
                sink.messages.append(
                    {
                        "from": envelope.mail_from,
                        "to": list(envelope.rcpt_tos),
                        "data": envelope.content.decode("utf8", errors="replace"),
                    }
                )
                return "250 Message accepted for delivery"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


def log_count(path: Path, needle: str) -> int:
    try:
        return path.read_text(errors="replace").count(needle)
    except FileNotFoundError:
        return 0


@contextmanager
def worker_on_broker(app, url: str, env: dict[str, str], *, name: str) -> Iterator[CeleryWorker]:  # type: ignore[no-untyped-def]
    """This process and one worker on every queue, both on ``url`` (any form the settings
    take: one URL, a ;-separated cluster, redis+sentinel://); stopped however it ends."""
    from config.queues import QUEUE_NAMES
    from tests.support.broker import celery_on_broker

    with celery_on_broker(app, url):
        worker = CeleryWorker(
            queues=sorted(QUEUE_NAMES),
            env={**env, "CELERY_BROKER_URL": url},
            concurrency=2,
            name=name,
        )
        try:
            worker.start(app)
            yield worker
        finally:
            worker.stop()


class LivePagesServer:
    """The live server (``config.asgi`` under uvicorn, as the Procfile's ``live``)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.logfile = ARTIFACTS / f"live-{self.port}.log"

    def start(self) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        with self.logfile.open("wb") as log:
            self.process = subprocess.Popen(
                asgi_server_command(self.port),
                env={**os.environ, **self.env},
                cwd=Path(__file__).resolve().parents[2],
                preexec_fn=die_with_parent,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._listening, 60, interval=0.2, what=f"the live server on {self.port}")

    def _listening(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"the live server exited; see {self.logfile}")
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def url(self, path: str, query: str = "") -> str:
        from urllib.parse import urlencode

        return f"ws://127.0.0.1:{self.port}/live/?{urlencode({'path': path, 'query': query})}"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None
