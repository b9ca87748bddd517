"""Run the Procfile's processes under supervisord, the way ``make run`` does.

Why supervisord and not honcho: honcho stops the whole stack when one process
exits, so a worker killed with ``kill -9`` took the web server down with it.
supervisord restarts a process that dies (with a growing delay if it keeps dying
at start: ``startsecs`` / ``startretries``) and the rest keeps serving; Ctrl-C
(SIGINT) or SIGTERM to it still stops everything, each program's whole process
group included (Celery pool children, gunicorn workers).

The Procfile stays the one list of commands (``name: command``, run by
``/bin/sh -c`` as honcho did). This module turns it into
``.local/supervisor/supervisord.conf`` and execs ``supervisord -n``:

* each program's output goes to ``.local/logs/<name>.log`` and, prefixed with its
  name, to the terminal (through the ``listen`` event listener below);
* ``STACK_SCALE="operational=2,sync=2"`` runs more processes of a worker group
  (``PORT`` is the process number, which the Procfile puts in the worker name);
* ``supervisorctl -c .local/supervisor/supervisord.conf status`` (``make ps``)
  shows what runs; ``... restart sync`` restarts one group.

Commands: ``python -m devstack.supervise [run]`` (default) and
``python -m devstack.supervise listen`` (the event listener; supervisord starts it).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shlex
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

REPO = Path(__file__).resolve().parent.parent
PROCFILE = REPO / "Procfile"
LOCAL = REPO / ".local"
RUN_DIR = LOCAL / "supervisor"
LOG_DIR = LOCAL / "logs"
CONF = RUN_DIR / "supervisord.conf"

# Programs that may run several processes (the web server binds one port).
SCALABLE_EXCLUDED = {"web", "live", "beat", "flower", "watchdog"}
STOP_WAIT_SECONDS = 20  # a Celery warm shutdown finishes the task in hand
START_SECONDS = 5  # up this long = started; dying sooner counts as a failed start
START_RETRIES = 8  # failed starts in a row (1 s, 2 s, ... apart) before giving up
SOCKET_PATH_MAX = 100  # AF_UNIX paths are limited to 108 bytes

_ENTRY = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")


class StackConfigError(Exception):
    """A configuration mistake worth one readable line."""


def procfile_entries(text: str) -> dict[str, str]:
    """``name: command`` lines, in order; blank lines and ``#`` comments skipped."""
    entries: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _ENTRY.match(line)
        if match is None:
            raise StackConfigError(f"Procfile line {number} is not 'name: command': {raw!r}")
        entries[match.group(1)] = match.group(2)
    return entries


def stack_scale(raw: str, names: Sequence[str]) -> dict[str, int]:
    """``STACK_SCALE`` (``"operational=2,sync=3"``) as {program: processes}."""
    scale = dict.fromkeys(names, 1)
    for part in filter(None, (p.strip() for p in raw.split(","))):
        name, _, count = part.partition("=")
        name = name.strip()
        if name not in scale:
            raise StackConfigError(
                f"STACK_SCALE names {name!r}, which is not in the Procfile ({', '.join(names)})"
            )
        if name in SCALABLE_EXCLUDED:
            raise StackConfigError(f"STACK_SCALE: {name!r} runs as one process")
        try:
            scale[name] = int(count)
        except ValueError:
            raise StackConfigError(f"STACK_SCALE: {part!r} is not name=number") from None
        if not 1 <= scale[name] <= 32:
            raise StackConfigError(f"STACK_SCALE: {name} must be between 1 and 32")
    return scale


def _quote(value: str) -> str:
    """A value for supervisord's config: ``%`` is its interpolation character."""
    return value.replace("%", "%%")


def socket_path(run_dir: Path) -> Path:
    path = run_dir / "supervisor.sock"
    if len(str(path)) <= SOCKET_PATH_MAX:
        return path
    # A deep checkout: keep the socket short, still private to this user.
    digest = hashlib.sha256(str(run_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"pms-supervisor-{os.getuid()}-{digest}.sock"


def render_config(
    entries: Mapping[str, str],
    scale: Mapping[str, int],
    *,
    run_dir: Path,
    log_dir: Path,
    python: str,
) -> str:
    sock = socket_path(run_dir)
    lines = [
        "; Written by devstack/supervise.py from the Procfile on every `make run`.",
        "[supervisord]",
        "nodaemon=true",
        f"logfile={_quote(str(log_dir / 'supervisord.log'))}",
        "logfile_maxbytes=5MB",
        "logfile_backups=2",
        "loglevel=info",
        f"pidfile={_quote(str(run_dir / 'supervisord.pid'))}",
        f"childlogdir={_quote(str(log_dir))}",
        # Our own uid, said on purpose: as root, supervisord warns when no user is set.
        f"user={os.getuid()}",
        "",
        "[unix_http_server]",
        f"file={_quote(str(sock))}",
        "chmod=0700",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{_quote(str(sock))}",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[eventlistener:output]",
        f"command={_quote(shlex.join([python, '-m', 'devstack.supervise', 'listen']))}",
        f"directory={_quote(str(REPO))}",
        "events=PROCESS_LOG",
        "buffer_size=10000",
        "stderr_logfile=/dev/stdout",
        "stderr_logfile_maxbytes=0",
        "autorestart=true",
        "priority=1",
        "",
    ]
    for name, command in entries.items():
        processes = scale.get(name, 1)
        lines += [
            f"[program:{name}]",
            f"command={_quote(shlex.join(['/bin/sh', '-c', f'exec {command}']))}",
            f"directory={_quote(str(REPO))}",
            f"process_name={'%(program_name)s-%(process_num)s' if processes > 1 else name}",
            f"numprocs={processes}",
            'environment=PORT="%(process_num)s",PYTHONUNBUFFERED="1"',
            "autostart=true",
            "autorestart=true",
            f"startsecs={START_SECONDS}",
            f"startretries={START_RETRIES}",
            "stopsignal=TERM",
            f"stopwaitsecs={STOP_WAIT_SECONDS}",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={_quote(str(log_dir))}/%(program_name)s-%(process_num)s.log",
            "stdout_logfile_maxbytes=10MB",
            "stdout_logfile_backups=2",
            "stdout_events_enabled=true",
            "priority=10",
            "",
        ]
    return "\n".join(lines)


def supervisord_binary() -> str:
    candidate = Path(sys.executable).with_name("supervisord")
    found = str(candidate) if candidate.exists() else shutil.which("supervisord")
    if not found:
        raise StackConfigError("supervisord is not installed in the virtualenv (run make install)")
    return found


def write_config() -> Path:
    entries = procfile_entries(PROCFILE.read_text())
    scale = stack_scale(os.environ.get("STACK_SCALE", ""), list(entries))
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    CONF.write_text(
        render_config(entries, scale, run_dir=RUN_DIR, log_dir=LOG_DIR, python=sys.executable)
    )
    return CONF


def cmd_run() -> int:
    conf = write_config()
    binary = supervisord_binary()
    sys.stdout.flush()
    os.execv(binary, [binary, "-n", "-c", str(conf)])
    return 0  # not reached


# --- The event listener: program output, prefixed with the program's name ---------------


def _read_event(stream: TextIO) -> tuple[dict[str, str], str] | None:
    line = stream.readline()
    if not line:
        return None
    headers = dict(token.split(":", 1) for token in line.split())
    # supervisord counts the payload's length in characters of its UTF-8 text.
    return headers, stream.read(int(headers["len"]))


def cmd_listen() -> int:
    """supervisord's PROCESS_LOG events, written to the terminal as ``name | line``.

    The protocol runs on stdin/stdout; the lines go to stderr, which supervisord
    writes to its own stdout (``stderr_logfile=/dev/stdout``).
    """
    # newline="": no newline translation, or the character counts would not match.
    stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace", newline="")
    out = io.TextIOWrapper(sys.stderr.buffer, encoding="utf-8", errors="replace")
    stdout = sys.stdout
    pending: dict[str, str] = {}  # a line a program has not finished yet
    while True:
        stdout.write("READY\n")
        stdout.flush()
        event = _read_event(stdin)
        if event is None:
            return 0
        _, payload = event
        header, _, data = payload.partition("\n")
        fields = dict(token.split(":", 1) for token in header.split())
        name = fields.get("processname", "?")
        *complete, rest = (pending.pop(name, "") + data).split("\n")
        if rest:
            pending[name] = rest
        out.write("".join(f"{name:<12}| {line}\n" for line in complete))
        out.flush()
        stdout.write("RESULT 2\nOK")
        stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args else "run"
    try:
        if command == "run":
            return cmd_run()
        if command == "listen":
            return cmd_listen()
        raise StackConfigError(f"unknown command {command!r} (run, listen)")
    except StackConfigError as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
