"""Every entry point started against a broker, database or admin API that is not there.

Real ``python -m processor`` processes against closed ports: each says in one line what it
cannot reach (URL with the password masked) and exits 1, without a traceback; with
``--wait`` it says how long it will wait, and uses the dependency as soon as it comes up
(a TCP proxy opened on the closed port while the command waits).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from retry.names import Names
from tests.support.proxy import TcpProxy

ROOT = Path(__file__).resolve().parents[1]
SECRET = "s3cret-pw"  # a made-up password that must never be printed
TOKEN = "entry-point-test-token"


def closed_port() -> int:
    """A port nothing listens on (bound once to pick it, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def broker_url(port: int, password: str = SECRET) -> str:
    """The local broker's account is guest/guest: commands that must log in use that."""
    return f"amqp://guest:{password}@127.0.0.1:{port}/"


def masked_broker_url(port: int) -> str:
    return f"amqp://guest:***@127.0.0.1:{port}/"


def env(database_url: str, namespace: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "PAYPROC_DATABASE_URL": database_url,
        "PAYPROC_NAMESPACE": namespace,
        "PAYPROC_ADMIN_TOKEN": TOKEN,
        "PAYPROC_METRICS_BIND": "127.0.0.1:0",
        "PAYPROC_LOG_LEVEL": "WARNING",
        **extra,
    }


def run(args: list[str], environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "processor", *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def the_one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert SECRET not in stderr
    return lines[0]


# ---- giving up: one line, exit 1 --------------------------------------------------------

BROKER_COMMANDS = {
    "worker": ["worker", "--wait", "0"],
    "admin": ["admin", "--bind", "127.0.0.1:0"],  # PAYPROC_STARTUP_TIMEOUT=0 below
    "grpc": ["grpc", "--wait", "0", "--bind", "127.0.0.1:0"],
    "submit": ["submit", "--count", "3", "--quiet", "--wait", "0"],
    "topology": ["topology", "--wait", "0"],
}


@pytest.mark.parametrize("command", sorted(BROKER_COMMANDS))
def test_unreachable_broker_is_one_line_and_exit_1(
    command: str, tmp_path: Path, namespace: str
) -> None:
    port = closed_port()
    args = [*BROKER_COMMANDS[command], "--amqp-url", broker_url(port)]
    environ = env(f"sqlite:///{tmp_path / 'p.db'}", namespace, PAYPROC_STARTUP_TIMEOUT="0")
    done = run(args, environ)
    assert done.returncode == 1, done.stderr
    assert the_one_line(done.stderr) == (
        f"payproc {command}: cannot reach the broker at {masked_broker_url(port)} "
        "(connection refused); not waiting (PAYPROC_STARTUP_TIMEOUT=0), exiting"
    )


@pytest.mark.parametrize("command", ["worker", "admin", "grpc", "db"])
def test_unreachable_database_is_one_line_and_exit_1(
    command: str, tmp_path: Path, namespace: str
) -> None:
    port = closed_port()
    url = f"postgresql://postgres:{SECRET}@127.0.0.1:{port}/payproc"
    args = {
        "worker": ["worker"],
        "admin": ["admin", "--bind", "127.0.0.1:0"],
        "grpc": ["grpc", "--bind", "127.0.0.1:0"],
        "db": ["db", "current"],
    }[command]
    # The broker is reachable (where a command needs it): the database is what is missing.
    environ = env(url, namespace, PAYPROC_STARTUP_TIMEOUT="1")
    done = run(args, environ)
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    masked = f"postgresql://postgres:***@127.0.0.1:{port}/payproc"
    # One line while it waits (how long), one when it gives up; nothing else.
    assert len(lines) == 2, done.stderr
    assert lines[0].endswith(
        f"cannot reach the database at {masked} (connection refused); "
        "retrying for up to 1 s (PAYPROC_STARTUP_TIMEOUT or --wait)"
    )
    assert lines[1] == (
        f"payproc {command}: cannot reach the database at {masked} (connection refused); "
        "gave up after 1 s, exiting"
    )
    assert SECRET not in done.stderr
    assert "Traceback" not in done.stderr


def test_refused_login_is_one_line_and_not_retried(
    amqp_url: str, tmp_path: Path, namespace: str
) -> None:
    """A wrong password will not fix itself: no waiting, one line naming the setting."""
    wrong = amqp_url.replace("guest:guest@", f"guest:{SECRET}@")
    environ = env(f"sqlite:///{tmp_path / 'p.db'}", namespace, PAYPROC_STARTUP_TIMEOUT="60")
    done = run(["topology", "--amqp-url", wrong], environ)
    assert done.returncode == 1, done.stderr
    line = the_one_line(done.stderr)
    assert line.startswith("payproc topology: cannot reach the broker at amqp://guest:***@")
    assert "ACCESS_REFUSED" in line
    assert line.endswith("not retrying: check PAYPROC_AMQP_URL")


def test_dlq_against_an_unreachable_admin_is_one_line_and_exit_1(tmp_path: Path) -> None:
    port = closed_port()
    environ = {**os.environ, "PAYPROC_ADMIN_TOKEN": TOKEN}
    done = run(["dlq", "stats", "--url", f"http://127.0.0.1:{port}"], environ)
    assert done.returncode == 1, done.stderr
    line = the_one_line(done.stderr)
    assert line.startswith(f"payproc dlq: cannot reach the admin API at http://127.0.0.1:{port}")
    assert TOKEN not in done.stderr


# ---- waiting: the dependency that comes up is used ----------------------------------------


class Command:
    """A ``payproc`` process whose stderr is read line by line as it is written."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []

    async def line_containing(self, needle: str, timeout: float = 90) -> str:
        assert self.proc.stderr is not None
        async with asyncio.timeout(timeout):
            while raw := await self.proc.stderr.readline():
                line = raw.decode(errors="replace").rstrip()
                self.lines.append(line)
                if needle in line:
                    return line
        raise AssertionError(f"{needle!r} never came; stderr: {self.lines}")

    async def stop(self) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        _out, err = await asyncio.wait_for(self.proc.communicate(), 60)
        self.lines += err.decode(errors="replace").splitlines()
        return int(await self.proc.wait())


@pytest.fixture
async def start() -> AsyncIterator[object]:
    started: list[Command] = []

    async def launch(args: list[str], environ: dict[str, str]) -> Command:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "processor",
            *args,
            cwd=ROOT,
            env=environ,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        command = Command(proc)
        started.append(command)
        return command

    yield launch
    for command in started:
        if command.proc.returncode is None:
            command.proc.kill()
            await command.proc.wait()


@pytest.fixture
async def proxies() -> AsyncIterator[list[TcpProxy]]:
    opened: list[TcpProxy] = []
    yield opened
    for proxy in opened:
        await proxy.close()


async def open_proxy(proxies: list[TcpProxy], port: int, target_port: int) -> TcpProxy:
    """Bring a dependency up on ``port`` (a proxy to the real service)."""
    proxy = TcpProxy("127.0.0.1", target_port)
    await proxy.start(port)
    proxies.append(proxy)
    return proxy


def waiting_line(dependency: str, masked_url: str, seconds: int) -> str:
    return (
        f"cannot reach the {dependency} at {masked_url} (connection refused); "
        f"retrying for up to {seconds} s (PAYPROC_STARTUP_TIMEOUT or --wait)"
    )


async def test_worker_waits_for_the_database_then_the_broker_and_uses_them(
    start, proxies: list[TcpProxy], postgres_url: str, topology: Names
) -> None:
    db_port, broker_port, gateway_port = closed_port(), closed_port(), closed_port()
    db_url = postgres_url.replace(
        "postgres@127.0.0.1:5432", f"postgres:{SECRET}@127.0.0.1:{db_port}"
    )
    environ = env(
        db_url,
        topology.namespace,
        PAYPROC_LOG_LEVEL="INFO",
        PAYPROC_GATEWAY_URL=f"http://merchant:{SECRET}@127.0.0.1:{gateway_port}",
    )
    worker = await start(
        ["worker", "--wait", "120", "--amqp-url", broker_url(broker_port, "guest")], environ
    )
    masked_db = db_url.replace(SECRET, "***")
    line = await worker.line_containing("cannot reach the database")
    assert line.endswith(waiting_line("database", masked_db, 120))
    await open_proxy(proxies, db_port, 5432)
    line = await worker.line_containing("cannot reach the broker")
    assert line.endswith(waiting_line("broker", masked_broker_url(broker_port), 120))
    broker = await open_proxy(proxies, broker_port, 5672)
    # The gateway is not waited for: the worker says so in one line and consumes.
    line = await worker.line_containing("cannot reach the gateway")
    assert line.endswith(
        f"cannot reach the gateway at http://merchant:***@127.0.0.1:{gateway_port} "
        "(connection refused); consuming anyway: payments wait in the retry ladder and the "
        "circuit breaker pauses consumption while the gateway fails"
    )
    await worker.line_containing("worker consuming")
    assert broker.live >= 1
    assert await worker.stop() == 0
    assert not any(
        secret in line for line in worker.lines for secret in (SECRET, "guest:guest", "Traceback")
    )


@pytest.mark.parametrize(
    ("command", "ready"),
    [
        (["admin", "--bind", "127.0.0.1:0"], "Started server process"),  # SIGTERM handled
        (["grpc", "--bind", "127.0.0.1:0"], "grpc service listening"),
    ],
    ids=["admin", "grpc"],
)
async def test_server_waits_for_the_broker_and_uses_it(
    start,
    proxies: list[TcpProxy],
    tmp_path: Path,
    topology: Names,
    command: list[str],
    ready: str,
) -> None:
    port = closed_port()
    environ = env(
        f"sqlite:///{tmp_path / 'p.db'}",
        topology.namespace,
        PAYPROC_LOG_LEVEL="INFO",
        PAYPROC_STARTUP_TIMEOUT="120",
    )
    server = await start([*command, "--amqp-url", broker_url(port, "guest")], environ)
    line = await server.line_containing("cannot reach the broker")
    assert line.endswith(waiting_line("broker", masked_broker_url(port), 120))
    broker = await open_proxy(proxies, port, 5672)
    await server.line_containing(ready)
    assert broker.live >= 1
    # After a clean shutdown uvicorn re-raises the SIGTERM it handled (exit by that signal).
    assert await server.stop() in (0, -signal.SIGTERM)
    assert not any("guest:guest" in line or "Traceback" in line for line in server.lines)


async def test_submit_waits_for_the_broker_and_publishes(
    start, proxies: list[TcpProxy], tmp_path: Path, topology: Names, connection
) -> None:
    port = closed_port()
    environ = env(f"sqlite:///{tmp_path / 'p.db'}", topology.namespace)
    submit = await start(
        [
            "submit",
            "--count",
            "5",
            "--quiet",
            "--wait",
            "120",
            "--amqp-url",
            broker_url(port, "guest"),
        ],
        environ,
    )
    line = await submit.line_containing("cannot reach the broker")
    assert line.endswith(waiting_line("broker", masked_broker_url(port), 120))
    await open_proxy(proxies, port, 5672)
    assert submit.proc.stdout is not None
    out = await asyncio.wait_for(submit.proc.stdout.read(), 90)
    assert await asyncio.wait_for(submit.proc.wait(), 30) == 0
    assert b"published 5 payment requests" in out
    channel = await connection.channel()
    queue = await channel.declare_queue(topology.requests, passive=True)
    assert queue.declaration_result.message_count == 5
    await channel.close()


@pytest.mark.parametrize(
    "command", [["worker"], ["grpc", "--bind", "127.0.0.1:0"]], ids=["worker", "grpc"]
)
async def test_stopped_while_waiting_exits_at_once(
    start, tmp_path: Path, namespace: str, command: list[str]
) -> None:
    """SIGTERM (a rollout, Ctrl-C) during the start-up wait ends it; it is not sat out."""
    port = closed_port()
    environ = env(f"sqlite:///{tmp_path / 'p.db'}", namespace)
    args = [*command, "--wait", "600", "--amqp-url", broker_url(port)]
    proc = await start(args, environ)
    await proc.line_containing("cannot reach the broker")
    proc.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.proc.wait(), 30) == 0
    rest = await proc.proc.stderr.read() if proc.proc.stderr else b""
    assert rest.decode().strip() == f"payproc {command[0]}: stopped during start-up"


@pytest.mark.parametrize("command", [["worker"], ["db", "upgrade"]], ids=["worker", "db"])
def test_sqlite_in_a_missing_folder_is_one_line_and_exit_1(
    command: list[str], tmp_path: Path, namespace: str
) -> None:
    url = f"sqlite:///{tmp_path / 'missing' / 'p.db'}"
    done = run(command, env(url, namespace, PAYPROC_STARTUP_TIMEOUT="30"))
    assert done.returncode == 1, done.stderr
    assert the_one_line(done.stderr) == (
        f"payproc {command[0]}: cannot reach the database at {url} "
        f"(folder {tmp_path / 'missing'} does not exist); not retrying: check PAYPROC_DATABASE_URL"
    )
