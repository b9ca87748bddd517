"""A throw-away three-node RabbitMQ cluster on loopback, beside the system's RabbitMQ.

For the cluster tests and the broker fault runs (``make faults-broker-node``). Each node
is a ``rabbitmq-server`` of the machine's own installation with its own node name,
AMQP, distribution and management ports, its own data folder, its own Erlang cookie
(the folder is its ``HOME``) and its own env file, so the system node's files are never
read or written; it runs as the ``rabbitmq`` user when started by root. Nodes 2 and 3
join node 1. ``stop`` stops every node it started and deletes the folder.

A node killed with ``kill -9`` and started again rejoins on its own: its data folder
remembers the cluster, and its quorum queue replicas catch up from the leader.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from testkit.processes import free_port, wait_until

RUN_AS = "rabbitmq"


class ClusterError(RuntimeError):
    """The cluster could not be started (the message says which node and why)."""


def rabbitmq_available() -> str | None:
    """Why no cluster can start here (None: it can)."""
    if not _binary("rabbitmq-server"):
        return "rabbitmq-server is not installed"
    if not _binary("rabbitmqctl"):
        return "rabbitmqctl is not installed"
    return None


# The real scripts, not Debian's /usr/sbin wrappers: those cd to /var/lib/rabbitmq and
# write /var/log/rabbitmq/startup_log, the system node's files (and refuse other users).
SCRIPTS = "/usr/lib/rabbitmq/bin"


def _binary(name: str) -> str | None:
    return shutil.which(name, path=SCRIPTS) or shutil.which(name)


@dataclass
class RabbitNode:
    index: int
    home: Path
    cluster_id: str = ""  # in the node name: two clusters (tests and a fault run) never clash
    amqp_port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return f"pms-rmq{self.index}-{self.cluster_id}@localhost"

    @property
    def pid_file(self) -> Path:
        return self.home / "pid"

    @property
    def log_dir(self) -> Path:
        return self.home / "log"

    def url(self, vhost: str = "/") -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/{_quote_vhost(vhost)}"

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def beam_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def _quote_vhost(vhost: str) -> str:
    return "" if vhost == "/" else vhost


class RabbitCluster:
    """``size`` nodes joined into one cluster. Use as a context manager."""

    def __init__(self, *, size: int = 3, root: Path | None = None) -> None:
        self.root = root or Path(tempfile.mkdtemp(prefix="pms-rabbit-cluster-"))
        self.cookie = secrets.token_hex(16).upper()
        cluster_id = secrets.token_hex(3)
        self.nodes = [
            RabbitNode(index, self.root / f"node{index}", cluster_id)
            for index in range(1, size + 1)
        ]
        self._epmd_was_running = _epmd_running()
        self._owner = _run_as_user()

    # --- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> RabbitCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        try:
            for node in self.nodes:
                self._write_files(node)
            with ThreadPoolExecutor(len(self.nodes)) as pool:
                list(pool.map(self.start_node, self.nodes))
            first = self.nodes[0]
            for node in self.nodes[1:]:
                self.ctl(node, "stop_app")
                self.ctl(node, "join_cluster", first.name)
                self.ctl(node, "start_app")
            wait_until(
                lambda: len(self.running_nodes()) == len(self.nodes),
                60,
                interval=0.5,
                what="every node running in one cluster",
            )
        except BaseException:
            self.stop()
            raise

    def start_node(self, node: RabbitNode) -> None:
        """Start one node (again, after ``kill``) and wait until it serves AMQP."""
        env = {
            "PATH": f"{SCRIPTS}:" + os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(node.home),
            "LANG": "C.UTF-8",
            "RABBITMQ_CONF_ENV_FILE": str(node.home / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": node.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(node.amqp_port),
            "RABBITMQ_DIST_PORT": str(node.dist_port),
            "RABBITMQ_CONFIG_FILE": str(node.home / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(node.home / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(node.home / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(node.home / "mnesia"),
            "RABBITMQ_LOG_BASE": str(node.log_dir),
            "RABBITMQ_PID_FILE": str(node.pid_file),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_FLAGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }
        node.pid_file.unlink(missing_ok=True)
        with open(node.home / "server.out", "ab") as out:
            # runuser resets HOME (where Erlang reads the cookie): `env` sets it after.
            assignments = [f"{key}={value}" for key, value in env.items()]
            node.process = subprocess.Popen(
                [*self._as_owner(), "env", *assignments, str(_binary("rabbitmq-server"))],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kill -9 takes all of it
            )
        try:
            # await_startup needs the node reachable first; until then it fails at once.
            wait_until(
                lambda: not node.alive() or self._answers(node),
                90,
                interval=0.5,
                what=f"{node.name} reachable",
            )
            self.ctl(node, "await_startup", "--timeout", "90", timeout=100)
        except (ClusterError, TimeoutError) as exc:
            tail = _tail(node.home / "server.out") or str(exc)
            raise ClusterError(f"{node.name} did not start: {tail}") from None

    def _answers(self, node: RabbitNode) -> bool:
        try:
            self.ctl(node, "ping", "--timeout", "2", timeout=15)
            return True
        except ClusterError:
            return False

    def kill(self, node: RabbitNode) -> None:
        """``kill -9`` of the node's whole process group (the Erlang VM and its helpers)."""
        if node.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.process.pid, signal.SIGKILL)
        node.process.wait(30)
        node.process = None

    def stop(self) -> None:
        for node in self.nodes:
            if node.alive():
                with contextlib.suppress(ClusterError):
                    self.ctl(node, "stop", timeout=60)
        for node in self.nodes:
            if node.process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    node.process.wait(30)
                self.kill(node)
        if not self._epmd_was_running and _epmd_running():
            subprocess.run(["epmd", "-kill"], capture_output=True, check=False, timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)

    # --- what clients are given ----------------------------------------------------------

    def broker_url(self, vhost: str = "/") -> str:
        """Celery's failover list: every node, ``;``-separated (round robin on a loss)."""
        return ";".join(node.url(vhost) for node in self.nodes)

    def management_urls(self) -> list[str]:
        return [node.management_url for node in self.nodes]

    def add_vhost(self, vhost: str) -> None:
        self.ctl(self.nodes[0], "add_vhost", vhost)
        self.ctl(self.nodes[0], "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")

    # --- what the cluster says about itself -----------------------------------------------

    def running_nodes(self) -> list[str]:
        """The nodes the cluster reports running (from any live node's management API)."""
        for node in self.nodes:
            if not node.alive():
                continue
            try:
                reply = self.management_get(node, "/api/nodes")
            except requests.RequestException:
                continue
            return sorted(item["name"] for item in reply if item.get("running"))
        return []

    def queue(self, name: str, vhost: str = "/") -> dict[str, Any] | None:
        """The management API's view of one queue (``leader``, ``members``, ``online``)."""
        for node in self.nodes:
            if not node.alive():
                continue
            path = f"/api/queues/{requests.utils.quote(vhost, safe='')}/{name}"
            try:
                return dict(self.management_get(node, path))
            except requests.HTTPError as exc:
                if exc.response is not None and exc.response.status_code == 404:
                    return None
            except requests.RequestException:
                continue
        return None

    def node_named(self, name: str) -> RabbitNode:
        return next(node for node in self.nodes if node.name == name)

    def leader_of(self, queue: str, vhost: str = "/") -> RabbitNode:
        info = wait_until(
            lambda: (q := self.queue(queue, vhost)) and q.get("leader") and q,
            30,
            what=f"a leader for {queue}",
        )
        return self.node_named(str(info["leader"]))

    @staticmethod
    def management_get(node: RabbitNode, path: str) -> Any:
        reply = requests.get(node.management_url + path, auth=("guest", "guest"), timeout=5)
        reply.raise_for_status()
        return reply.json()

    def ctl(self, node: RabbitNode, *args: str, timeout: float = 60) -> str:
        command = [
            *self._as_owner(),
            str(_binary("rabbitmqctl")),
            "--erlang-cookie",
            self.cookie,
            "-n",
            node.name,
            *args,
        ]
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=timeout,
                env={**os.environ, "HOME": str(node.home), "LANG": "C.UTF-8"},
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ClusterError(f"rabbitmqctl {args[0]} on {node.name} timed out") from None
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()
            raise ClusterError(
                f"rabbitmqctl {args[0]} on {node.name}: {last[0] if last else done.returncode}"
            )
        return done.stdout

    # --- files ---------------------------------------------------------------------------

    def _write_files(self, node: RabbitNode) -> None:
        node.home.mkdir(parents=True, exist_ok=True)
        node.log_dir.mkdir(exist_ok=True)
        cookie = node.home / ".erlang.cookie"
        cookie.write_text(self.cookie)
        (node.home / "rabbitmq-env.conf").write_text("# written by testkit.rabbitmq_cluster\n")
        (node.home / "advanced.config").write_text("[].\n")
        (node.home / "enabled_plugins").write_text("[rabbitmq_management].\n")
        (node.home / "rabbitmq.conf").write_text(
            "# written by testkit.rabbitmq_cluster; the node lives as long as its test\n"
            f"listeners.tcp.default = 127.0.0.1:{node.amqp_port}\n"
            "management.tcp.ip = 127.0.0.1\n"
            f"management.tcp.port = {node.http_port}\n"
            # A node cut off from the majority stops serving rather than diverging.
            "cluster_partition_handling = pause_minority\n"
            # Clients notice a dead node within seconds, not minutes.
            "heartbeat = 10\n"
        )
        if self._owner is not None:
            uid, gid = self._owner
            for path in [node.home, *node.home.rglob("*")]:
                os.chown(path, uid, gid)
        os.chmod(cookie, 0o400)
        os.chmod(node.home, 0o700)

    def _as_owner(self) -> list[str]:
        return ["runuser", "-u", RUN_AS, "--"] if self._owner is not None else []


def _run_as_user() -> tuple[int, int] | None:
    """(uid, gid) of the ``rabbitmq`` user when we are root; None: run as ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(RUN_AS)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def _epmd_running() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 4369), timeout=1).close()
        return True
    except OSError:
        return False
