"""What every scenario shares: child processes, the fake gateway, fresh databases, pre-filling,
waiting for a drain, and honest resource accounting (peak RSS, CPU split by owner).

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
import platform
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

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


# ---- databases --------------------------------------------------------------------------------


def _epoch(value: Any) -> float | None:
    """A row timestamp (aware/naive datetime, ISO text or epoch number) as epoch seconds."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return float(value.timestamp())
    raise TypeError(f"not a timestamp: {value!r}")


class Database:
    """A fresh SQLite file or PostgreSQL database for one run; ``drop()`` removes it."""

    def __init__(self, kind: str, label: str) -> None:
        if kind not in ("sqlite", "postgres"):
            raise ValueError(kind)
        self.kind = kind
        self.name = f"payproc_bench_{label}_{short_id()}".replace("-", "_")
        self._sqlite: sqlite3.Connection | None = None
        self._pg: Any = None
        if kind == "sqlite":
            LOG_DIR.mkdir(parents=True, exist_ok=True)
            self.path = LOG_DIR / f"{self.name}.db"
            self.url = f"sqlite:///{self.path}"
        else:
            import psycopg

            with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.name}"')
            self.url = f"{PG_SERVER}/{self.name}"

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement on the harness's own connection (autocommit) and fetch rows."""
        if self.kind == "sqlite":
            if self._sqlite is None:
                self._sqlite = sqlite3.connect(
                    self.path, timeout=30, isolation_level=None, check_same_thread=False
                )
                self._sqlite.execute("PRAGMA busy_timeout=30000")
            return list(self._sqlite.execute(sql.replace("%s", "?"), params).fetchall())
        if self._pg is None:
            import psycopg

            self._pg = psycopg.connect(self.url, autocommit=True)
        with self._pg.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall()) if cur.description else []

    def count(self, table: str, statuses: Sequence[str]) -> int:
        marks = ",".join("%s" for _ in statuses)
        # Table and column names in this class are the harness's own constants, never input.
        sql = f"SELECT count(*) FROM {table} WHERE status IN ({marks})"  # noqa: S608
        try:
            return int(self.execute(sql, statuses)[0][0])
        except Exception as exc:  # the table does not exist until the worker created it
            if "no such table" in str(exc) or "does not exist" in str(exc):
                if self.kind == "postgres" and self._pg is not None:
                    self._pg.close()
                    self._pg = None
                return 0
            raise

    def window(self, start_column: str, table: str = "payments") -> tuple[float, float]:
        """(earliest start, latest ``updated_at``) of the rows, as epoch seconds."""
        sql = f"SELECT min({start_column}), max(updated_at) FROM {table}"  # noqa: S608
        row = self.execute(sql)[0]
        start, end = _epoch(row[0]), _epoch(row[1])
        if start is None or end is None:
            raise BenchError("no rows to time")
        return start, end

    def steady_rate(self, statuses: Sequence[str], table: str = "payments") -> float:
        """Payments/s between the 10th and the 90th percentile of completion times: the
        throughput while the worker was busy, without start-up or a retry tail."""
        marks = ",".join("%s" for _ in statuses)
        sql = f"SELECT updated_at FROM {table} WHERE status IN ({marks})"  # noqa: S608
        rows = self.execute(sql, statuses)
        times = sorted(t for t in (_epoch(r[0]) for r in rows) if t is not None)
        if len(times) < 10:
            return 0.0
        low, high = times[len(times) // 10], times[(len(times) * 9) // 10]
        return (0.8 * len(times)) / (high - low) if high > low else 0.0

    def status_counts(self, table: str = "payments") -> dict[str, int]:
        rows = self.execute(f"SELECT status, count(*) FROM {table} GROUP BY status")  # noqa: S608
        return {str(status): int(n) for status, n in rows}

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
            self._sqlite = None
        if self._pg is not None:
            self._pg.close()
            self._pg = None

    def drop(self) -> None:
        self.close()
        if self.kind == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    Path(f"{self.path}{suffix}").unlink()
            return
        import psycopg

        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def pg_version() -> str:
    try:
        import psycopg

        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return str(row[0]).split()[0] if row else "?"
    except Exception as exc:
        return f"unavailable ({type(exc).__name__})"


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


# ---- resource accounting ----------------------------------------------------------------------


@dataclass
class RssSampler:
    """Samples the RSS of some process trees every ``interval`` seconds; keeps each peak.

    ``peak_mb`` is the largest single process's peak (a worker process's memory, which is
    what the target is about), ``peak_total_mb`` the largest sum over all sampled processes.
    """

    roots: list[int]
    interval: float = 0.1
    peak_mb: float = 0.0
    peak_total_mb: float = 0.0
    _task: asyncio.Task[None] | None = None

    def _sample(self) -> None:
        total = 0
        for root in self.roots:
            try:
                parent = psutil.Process(root)
                procs = [parent, *parent.children(recursive=True)]
            except psutil.Error:
                continue
            for proc in procs:
                try:
                    rss = proc.memory_info().rss
                except psutil.Error:
                    continue
                total += rss
                self.peak_mb = max(self.peak_mb, rss / 2**20)
        self.peak_total_mb = max(self.peak_total_mb, total / 2**20)

    async def _run(self) -> None:
        while True:
            self._sample()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._sample()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _cpu_snapshot() -> dict[int, tuple[float, float, str, str]]:
    snap: dict[int, tuple[float, float, str, str]] = {}
    for proc in psutil.process_iter(["create_time", "username", "name"]):
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        info = proc.info
        snap[proc.pid] = (
            times.user + times.system,
            float(info.get("create_time") or 0.0),
            str(info.get("username") or ""),
            str(info.get("name") or ""),
        )
    return snap


@dataclass
class CpuWatch:
    """CPU used during a window, split by owner, as % of the whole machine (all cores).

    ``groups`` names process trees of interest (``workers``, ``gateway``); the rest of this
    harness's own tree is ``harness``; ``broker`` is the rabbitmq user's processes, ``db`` the
    postgres user's, and ``foreign`` everything else: background load that was on the machine
    while we measured (other people's test runs). ``<group>_cpu_s`` keeps CPU-seconds.
    """

    groups: dict[str, list[int]] = field(default_factory=dict)
    started: float = 0.0
    before: dict[int, tuple[float, float, str, str]] = field(default_factory=dict)
    result: dict[str, float] = field(default_factory=dict)
    steal_before: float = 0.0

    def start(self) -> None:
        self.before = _cpu_snapshot()
        self.steal_before = _steal_seconds()
        self.started = time.monotonic()

    def _members(self) -> dict[int, str]:
        owner: dict[int, str] = {}
        me = psutil.Process()
        owner[me.pid] = "harness"
        with contextlib.suppress(psutil.Error):
            for child in me.children(recursive=True):
                owner[child.pid] = "harness"
        for name, roots in self.groups.items():
            for root in roots:
                with contextlib.suppress(psutil.Error):
                    parent = psutil.Process(root)
                    owner[root] = name
                    for child in parent.children(recursive=True):
                        owner[child.pid] = name
        return owner

    def stop(self) -> dict[str, float]:
        owner = self._members()
        after = _cpu_snapshot()
        elapsed = max(time.monotonic() - self.started, 1e-6)
        split = {name: 0.0 for name in [*self.groups, "harness", "broker", "db", "foreign"]}
        for pid, (cpu, created, user, _name) in after.items():
            old = self.before.get(pid)
            used = cpu - old[0] if old is not None and old[1] == created else cpu
            if pid in owner:
                split[owner[pid]] += used
            elif user == "rabbitmq":
                split["broker"] += used
            elif user == "postgres":
                split["db"] += used
            else:
                split["foreign"] += used
        capacity = elapsed * (os.cpu_count() or 1)
        self.result = {k: round(100 * v / capacity, 1) for k, v in split.items()}
        self.result["busy"] = round(sum(100 * v / capacity for v in split.values()), 1)
        # CPU time the hypervisor gave to other guests while ours wanted it: on a shared VM it
        # varies from run to run and slows every process here alike.
        self.result["stolen"] = round(100 * (_steal_seconds() - self.steal_before) / capacity, 1)
        for name, used in split.items():
            self.result[f"{name}_cpu_s"] = round(used, 2)
        self.result["seconds"] = round(elapsed, 2)
        return self.result


def _steal_seconds() -> float:
    """Machine-wide CPU seconds stolen by the hypervisor since boot (0 where not reported)."""
    return float(getattr(psutil.cpu_times(), "steal", 0.0))


def background_busy(seconds: float = 1.0) -> float:
    """Machine-wide CPU busy % over ``seconds`` before we start (others' load)."""
    return float(psutil.cpu_percent(interval=seconds))


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


async def wait_drained(
    db: Database,
    table: str,
    statuses: Sequence[str],
    expected: int,
    *,
    within: float,
    procs: Sequence[Proc],
    progress: Callable[[int], None] | None = None,
) -> None:
    """Until ``expected`` rows of ``table`` have a final status."""
    last_report = time.monotonic()

    def done() -> bool:
        nonlocal last_report
        count = db.count(table, statuses)
        if progress is not None and time.monotonic() - last_report > 5:
            last_report = time.monotonic()
            progress(count)
        return count >= expected

    await wait_until(done, within=within, what=f"{expected} final rows", procs=procs)


# ---- results ----------------------------------------------------------------------------------


@dataclass
class Run:
    """One measured run."""

    label: str
    count: int
    seconds: float
    checks: dict[str, Any] = field(default_factory=dict)
    rss_mb: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    def cpu_ms(self, group: str) -> float:
        """Milliseconds of CPU ``group`` spent per payment during the run."""
        return 1000 * self.cpu.get(f"{group}_cpu_s", 0.0) / self.count if self.count else 0.0

    def system_cpu_ms(self) -> float:
        """Machine CPU per payment for the job itself: workers, broker, database, gateway."""
        return sum(self.cpu_ms(g) for g in ("workers", "broker", "db", "gateway"))


@dataclass
class Figure:
    """The median of several runs of one configuration (or the reason it has none)."""

    key: str
    label: str
    runs: list[Run] = field(default_factory=list)
    error: str | None = None
    unit: str = "payments/s"

    @property
    def ok(self) -> bool:
        return bool(self.runs) and self.error is None

    @property
    def rate(self) -> float:
        return statistics.median(r.rate for r in self.runs) if self.runs else 0.0

    @property
    def spread(self) -> tuple[float, float]:
        rates = [r.rate for r in self.runs]
        return (min(rates), max(rates)) if rates else (0.0, 0.0)

    def median_run(self) -> Run | None:
        if not self.runs:
            return None
        ordered = sorted(self.runs, key=lambda r: r.rate)
        return ordered[len(ordered) // 2]

    def extra(self, name: str, default: Any = None) -> Any:
        run = self.median_run()
        return run.extra.get(name, default) if run is not None else default

    def max_extra(self, name: str) -> float:
        values = [float(r.extra[name]) for r in self.runs if name in r.extra]
        return max(values) if values else 0.0


async def repeat(
    key: str,
    label: str,
    times: int,
    once: Callable[[int], Any],
) -> Figure:
    """Run ``once(i)`` ``times`` times; a failure ends the figure with its reason."""
    figure = Figure(key, label)
    for index in range(times):
        try:
            run: Run = await once(index)
        except Exception as exc:
            figure.error = f"{type(exc).__name__}: {str(exc)[:600]}"
            log(f"{label}: run {index + 1} FAILED: {figure.error}")
            break
        figure.runs.append(run)
        log(
            f"{label}: run {index + 1}/{times}: {run.rate:,.0f}/s "
            f"({run.count} in {run.seconds:.2f} s; cpu {run.cpu}; {run.checks})"
        )
    return figure


def machine_line(rabbit: str) -> dict[str, str]:
    cpu_model = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for module in ("aio_pika", "celery", "dramatiq", "sqlalchemy"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions[module] = version(module.replace("_", "-"))
    return {
        "cpu": cpu_model,
        "cores": str(os.cpu_count()),
        "ram_gib": f"{psutil.virtual_memory().total / 2**30:.1f}",
        "rabbitmq": rabbit,
        "postgresql": pg_version(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "libraries": ", ".join(f"{k} {v}" for k, v in versions.items()),
    }
