"""A throw-away three-node RabbitMQ cluster on loopback ports, beside the default node.

Debian's launcher drops to the ``rabbitmq`` user, so every data and log folder belongs to
that user; each node gets its own name, ports, data, logs, pid, plugins, feature-flags and
config file (the machine's /etc/rabbitmq/rabbitmq.conf pins port 5672 and must not apply).
The default node ``rabbit@localhost`` is never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rabbitmqctl(node: str, *args: str, timeout: float = 120) -> str:
    result = subprocess.run(
        ["rabbitmqctl", "-n", node, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"rabbitmqctl -n {node} {' '.join(args)}: {result.stderr[-500:]}")
    return result.stdout


@dataclass
class Node:
    name: str
    port: int
    dist_port: int
    base: Path

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def env(self) -> dict[str, str]:
        return {
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_PID_FILE": str(self.base / "pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_FEATURE_FLAGS_FILE": str(self.base / "feature_flags"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
        }

    def start(self) -> None:
        for folder in ("mnesia", "log"):
            (self.base / folder).mkdir(parents=True, exist_ok=True)
        (self.base / "enabled_plugins").write_text("[].\n")
        (self.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\nloopback_users = none\n"
        )
        shutil.chown(self.base, "rabbitmq", "rabbitmq")
        for path in self.base.rglob("*"):
            shutil.chown(path, "rabbitmq", "rabbitmq")
        subprocess.run(
            ["rabbitmq-server", "-detached"],
            env={**os.environ, **self.env()},
            check=True,
            timeout=60,
        )

    def wait_ready(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                rabbitmqctl(self.name, "await_startup", "--timeout", "60", timeout=75)
                return
            except (RuntimeError, subprocess.TimeoutExpired):
                time.sleep(0.5)  # not registered with epmd yet: nothing to await
        raise TimeoutError(f"{self.name} did not start; see {self.base / 'log'}")

    def stop(self) -> None:
        try:
            rabbitmqctl(self.name, "stop", timeout=60)
        except (RuntimeError, subprocess.TimeoutExpired):
            pid_file = self.base / "pid"
            if pid_file.exists():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid_file.read_text().strip()), 9)


class Cluster:
    def __init__(self, size: int = 3) -> None:
        tag = uuid.uuid4().hex[:6]
        self.root = Path(tempfile.mkdtemp(prefix="payproc-cluster-"))
        os.chmod(self.root, 0o755)  # noqa: S103 - the rabbitmq user must reach its folders
        self.nodes = [
            Node(f"payproc-{tag}-{i}@localhost", _free_port(), _free_port(), self.root / f"n{i}")
            for i in range(1, size + 1)
        ]

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.wait_ready()
        first = self.nodes[0].name
        for node in self.nodes[1:]:
            rabbitmqctl(node.name, "stop_app")
            rabbitmqctl(node.name, "join_cluster", first)
            rabbitmqctl(node.name, "start_app")
            rabbitmqctl(node.name, "await_startup")

    def running_nodes(self) -> str:
        return rabbitmqctl(self.nodes[-1].name, "cluster_status")

    def close(self) -> None:
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.root, ignore_errors=True)
