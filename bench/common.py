"""What every scenario shares: child processes, the fake gateway, the broker helpers and
waiting for a condition. Fresh databases are in ``bench.database``, resource accounting in
``bench.accounting``, measured runs and figures in ``bench.figures``.

Measurement rules used by every drain scenario (payproc and peers alike):

* the queue is pre-filled with confirmed, persistent publishes *before* any worker starts;
* the drain window runs from the first payment a worker picks up (the earliest row's start
  timestamp) to the moment the last payment's row became final (the latest ``updated_at``);
  the harness polls the database until every payment is final and the queue is empty, then
  reads both ends from the rows, so process start-up and polling granularity are excluded
  the same way for everyone;
* each run has its own namespace/queue names, a fresh database and a fresh gateway process,
  whose ledger must show zero double charges.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
AMQP_URL = os.environ.get("PAYPROC_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
PG_SERVER = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")
LOG_DIR = Path(tempfile.gettempdir()) / "payproc-bench"
_GATEWAY_LINE = re.compile(r"fake gateway listening on (http://\S+)")
PAYPROC_FINAL = ("succeeded", "declined", "dead_lettered")
PEER_FINAL = ("succeeded", "declined")
# The payproc shapes of the gateway-latency scenario, as (workers, prefetch per worker): one
# worker shows how far a single process hides the latency; two match the peers' 2 processes.
LATENCY_SHAPES = ((1, 100), (1, 300), (2, 100), (2, 300))
FiguresT = TypeVar("FiguresT")
FailedT = TypeVar("FailedT")


def latency_key(workers: int, prefetch: int) -> str:
    """The figure key of one payproc shape in the latency scenario (``payproc_p100``, ...)."""
    return f"payproc{'' if workers == 1 else workers}_p{prefetch}"


def workers_phrase(workers: int) -> str:
    """``1 worker``, ``2 workers``."""
    return f"{workers} worker{'s' if workers > 1 else ''}"


class BenchError(RuntimeError):
    """A run could not be measured (a process died, a drain timed out, a check failed)."""


def short_id() -> str:
    return uuid.uuid4().hex[:8]


def log(message: str) -> None:
    """Progress goes to stderr so that stdout carries only the table."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def each_database(
    scenario: str,
    dbs: Iterable[str],
    measure: Callable[[str], Awaitable[FiguresT]],
    failed: Callable[[str, str], FailedT],
) -> dict[str, FiguresT | FailedT]:
    """``measure`` on every database in ``dbs`` in turn. A database whose measurement raises
    is kept as ``failed(db, "<exception type>: <message>")`` and logged, so one broken database
    does not cost the scenario the other databases' figures."""
    found: dict[str, FiguresT | FailedT] = {}
    for db in dbs:
        try:
            found[db] = await measure(db)
        except Exception as exc:
            log(f"{scenario} ({db}) failed: {type(exc).__name__}: {exc}")
            found[db] = failed(db, f"{type(exc).__name__}: {str(exc)[:400]}")
    return found


# ---- child processes ------------------------------------------------------------------------


class Proc:
    """A child process whose output goes to a log file under ``LOG_DIR``."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str]) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log = LOG_DIR / f"{name}-{short_id()}.log"
        with self.log.open("wb") as out:
            self.popen = subprocess.Popen(  # noqa: S603 - our own interpreter and tools
                list(argv),
                cwd=ROOT,
                env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 25) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def wait_for_line(self, pattern: re.Pattern[str], within: float = 30) -> str:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            match = pattern.search(self.log.read_text(errors="replace"))
            if match:
                return match.group(1)
            if not self.alive():
                break
            await asyncio.sleep(0.05)
        raise BenchError(f"{self.name} did not start; its log:\n{self.tail()}")

    def check_alive(self) -> None:
        if not self.alive():
            raise BenchError(
                f"{self.name} exited with {self.popen.returncode}; its log:\n{self.tail()}"
            )

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM, then SIGKILL of the whole process group after ``timeout`` seconds."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
        # Children a framework forked (Dramatiq's worker processes) go with the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)


def python(*args: str) -> list[str]:
    return [sys.executable, *args]


# ---- the fake gateway -------------------------------------------------------------------------


class Gateway:
    """The fake gateway as its own process (``python -m processor fake-gateway``) on a free
    loopback port. ``launch`` returns at once; ``await ready()`` waits for its address, so
    its start-up can overlap with pre-filling."""

    def __init__(self, latency: float = 0.0, failure_rate: float = 0.0, seed: int = 7) -> None:
        argv = python(
            "-m",
            "processor",
            "fake-gateway",
            "--port",
            "0",
            "--latency",
            f"{latency:g}",
            "--failure-rate",
            f"{failure_rate:g}",
            "--seed",
            str(seed),
        )
        self.proc = Proc("gateway", argv, {})
        self.url = ""

    async def ready(self) -> str:
        if not self.url:
            self.url = await self.proc.wait_for_line(_GATEWAY_LINE)
        return self.url

    def stats(self) -> dict[str, Any]:
        """The ledger: requests, charges, ``double_charged`` (the keys charged twice)."""
        response = httpx.get(f"{self.url}/_stats", params={"summary": "1"}, timeout=10)
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats

    def stop(self) -> None:
        self.proc.stop()


# ---- broker helpers ---------------------------------------------------------------------------


async def queue_depth(connection: Any, queue: str) -> tuple[int, int]:
    """(messages ready, consumers) of a queue, by a passive declare."""
    channel = await connection.channel()
    try:
        declared = await channel.declare_queue(queue, passive=True)
        ok = declared.declaration_result
        return int(ok.message_count or 0), int(ok.consumer_count or 0)
    finally:
        with contextlib.suppress(Exception):
            await channel.close()


async def delete_queues(
    connection: Any, queues: Iterable[str], exchanges: Iterable[str] = ()
) -> None:
    channel = await connection.channel()
    try:
        for name in queues:
            with contextlib.suppress(Exception):
                await channel.queue_delete(name)
        for name in exchanges:
            with contextlib.suppress(Exception):
                await channel.exchange_delete(name)
    finally:
        with contextlib.suppress(Exception):
            await channel.close()


async def connect() -> Any:
    import aio_pika

    return await aio_pika.connect_robust(
        AMQP_URL, client_properties={"connection_name": "payproc-bench harness"}
    )


def rabbitmq_version(connection: Any) -> str:
    with contextlib.suppress(Exception):
        props = connection.transport.connection.server_properties
        version = props.get("version")
        return version.decode() if isinstance(version, bytes) else str(version)
    return "?"


async def wait_consumers(connection: Any, queue: str, expected: int, procs: Sequence[Proc]) -> None:
    """Until ``expected`` consumers are attached to ``queue`` (the workers are ready)."""
    deadline = time.monotonic() + 60
    while (await queue_depth(connection, queue))[1] < expected:
        for proc in procs:
            proc.check_alive()
        if time.monotonic() > deadline:
            raise BenchError(f"workers did not attach to {queue}")
        await asyncio.sleep(0.02)


# ---- waiting for a drain ----------------------------------------------------------------------


async def wait_until(
    done: Callable[[], bool],
    *,
    within: float,
    what: str,
    procs: Sequence[Proc] = (),
    interval: float = 0.05,
) -> None:
    """Poll ``done`` (run in a thread: it does blocking I/O) until true; fail fast if a child
    process dies."""
    deadline = time.monotonic() + within
    while True:
        if await asyncio.to_thread(done):
            return
        for proc in procs:
            proc.check_alive()
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {within:.0f} s waiting for {what}")
        await asyncio.sleep(interval)
