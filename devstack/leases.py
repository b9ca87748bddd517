"""Which embedded servers run and who uses them: the stack lock, the leases of live
``exec`` launchers, ``.local/stack.env``, and the start (``ensure``) and stop (``release``)
decisions taken under the lock."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import psutil

from devstack.base import LOCAL, DevstackError, Service, rel
from devstack.postgres import Postgres
from devstack.processes import process, signals_deferred
from devstack.redis_server import Redis

LOCK_FILE = LOCAL / "devstack.lock"
LEASES = LOCAL / "leases"
STACK_ENV = LOCAL / "stack.env"
LOCK_TIMEOUT = 600.0  # another launcher may be running initdb

SERVICES: tuple[Service, ...] = (Postgres(), Redis())


def embedded_services() -> list[Service]:
    """Services whose URL variable is unset, i.e. the ones we must provide."""
    return [svc for svc in SERVICES if not svc.external]


@contextlib.contextmanager
def stack_lock() -> Iterator[None]:
    """Serialise start/stop decisions between concurrent launchers."""
    LOCAL.mkdir(parents=True, exist_ok=True)
    fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise DevstackError(
                        f"another devstack run holds {rel(LOCK_FILE)} for too long"
                    ) from None
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def write_stack_env() -> None:
    """Mirror the running embedded servers into .local/stack.env (atomically)."""
    lines = []
    for svc in SERVICES:
        running = svc.running()
        if running is not None:
            lines.append(f"{svc.env_var}={svc.url(running[1])}\n")
    if not lines:
        STACK_ENV.unlink(missing_ok=True)
        return
    tmp = STACK_ENV.with_suffix(".tmp")
    tmp.write_text("# Written by devstack/leases.py while embedded servers run.\n" + "".join(lines))
    tmp.replace(STACK_ENV)


def ensure(services: Sequence[Service], *, ephemeral: bool) -> dict[str, str]:
    """Start whichever of `services` is not running; return {ENV_VAR: url}.

    ephemeral=True (exec): servers started here get the ephemeral mark and the
    caller's lease is taken under the same lock, so a concurrent launcher's
    cleanup can't stop a server between our check and our lease.
    ephemeral=False (up): servers become persistent.
    """
    urls: dict[str, str] = {}
    if not services:
        return urls  # everything external: touch nothing, not even .local
    with stack_lock():
        started: list[Service] = []
        try:
            for svc in services:
                running = svc.wait_settled()
                if running is None:
                    # Listed before start(): a start that fails or is
                    # interrupted half-way is undone below as well.
                    started.append(svc)
                    port = svc.start()
                    if ephemeral:
                        svc.marker.touch()
                else:
                    port = running[1]
                if not ephemeral:
                    svc.marker.unlink(missing_ok=True)
                urls[svc.env_var] = svc.url(port)
            if ephemeral:
                take_lease(services)
        except BaseException:
            # Half-way failure or Ctrl-C: undo only what this call started.
            with signals_deferred():
                for svc in reversed(started):
                    with contextlib.suppress(DevstackError, OSError):
                        svc.stop()
                    svc.marker.unlink(missing_ok=True)
            raise
        finally:
            write_stack_env()
    return urls


# --------------------------------------------------------------------------- #
# Leases (which live `exec` launchers use which embedded server)
# --------------------------------------------------------------------------- #


def lease_path(pid: int) -> Path:
    return LEASES / f"{pid}.json"


def take_lease(services: Sequence[Service]) -> None:
    LEASES.mkdir(parents=True, exist_ok=True)
    me = psutil.Process()
    lease = {"pid": me.pid, "create_time": me.create_time(), "services": [s.name for s in services]}
    lease_path(me.pid).write_text(json.dumps(lease))


def drop_lease() -> None:
    lease_path(os.getpid()).unlink(missing_ok=True)


def other_users(service: Service) -> list[int]:
    """Pids of other live launchers leasing `service`; dead leases are removed.
    create_time guards against a recycled pid keeping a server alive forever."""
    users = []
    for path in LEASES.glob("*.json") if LEASES.is_dir() else []:
        try:
            lease = json.loads(path.read_text())
            pid = int(lease["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)
            continue
        if pid == os.getpid():
            continue
        proc = process(pid)
        try:
            same = proc is not None and abs(proc.create_time() - lease["create_time"]) < 1
        except psutil.Error:
            same = False
        if not same:
            path.unlink(missing_ok=True)
        elif service.name in lease.get("services", []):
            users.append(pid)
    return users


def release(services: Sequence[Service]) -> None:
    """End of `exec`: drop our lease and stop ephemeral servers nobody else uses."""
    if not services:
        return
    with stack_lock():
        drop_lease()
        errors = []
        for svc in services:
            if not svc.marker.exists() or other_users(svc):
                continue  # persistent (`up`), or still in use by another exec
            try:
                svc.stop()
                svc.marker.unlink(missing_ok=True)
            except DevstackError as exc:
                errors.append(exc)
        write_stack_env()
    if errors:
        raise errors[0]
