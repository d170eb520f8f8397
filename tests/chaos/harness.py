"""Run payproc under injected faults with real processes and check the invariants.

One ``ChaosRun`` owns: a namespace on the real broker, a database, a fake-gateway process, a
set of worker processes (each optionally behind its own TCP proxy so its connection can be
cut), and the payments it published. ``settle()`` waits for every payment to reach a final
state; ``verify()`` checks that nothing was lost and nothing was charged twice.

Every fault is bounded in count and time; processes are stopped by pid and the namespace is
deleted in ``close()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import orjson
from sqlalchemy import select, text

from processor.db import create_schema, make_engine
from processor.producer import generate_payment, payment_message, publish_bodies, request_message
from retry.names import Names
from retry.topology import declare_topology, delete_topology
from schemas import headers as h
from schemas.cards import contains_card_number
from schemas.tables import PaymentRow
from tests.support.proxy import TcpProxy

ROOT = Path(__file__).resolve().parents[2]
FINAL = ("succeeded", "declined", "dead_lettered")
CARD_NUMBERS = ("4242424242424242", "4111 1111 1111 1111", "5555-5555-5555-4444")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def malformed_messages(rng: random.Random, count: int) -> list[tuple[bytes, str | None]]:
    """Not JSON, wrong types, unknown fields, oversized, card numbers, wrong content type."""

    def valid() -> dict[str, Any]:
        return generate_payment(rng)

    makers = [
        lambda: (b"{not json" + str(rng.random()).encode(), "application/json"),
        lambda: (
            orjson.dumps({**valid(), "amount": str(rng.randrange(1, 999))}),
            "application/json",
        ),
        lambda: (orjson.dumps({**valid(), "unexpected": rng.random()}), "application/json"),
        lambda: (orjson.dumps({**valid(), "description": "x" * 70_000}), "application/json"),
        lambda: (
            orjson.dumps({**valid(), "payment_method": rng.choice(CARD_NUMBERS)}),
            "application/json",
        ),
        lambda: (
            orjson.dumps({**valid(), "metadata": {"pan": rng.choice(CARD_NUMBERS)}}),
            "application/json",
        ),
        lambda: (orjson.dumps(valid()), "text/plain"),
        lambda: (orjson.dumps([1, 2, rng.random()]), "application/json"),
        lambda: (orjson.dumps({**valid(), "currency": "eur"}), "application/json"),
    ]
    return [makers[i % len(makers)]() for i in range(count)]


@dataclass
class Published:
    valid: dict[str, dict[str, Any]] = field(default_factory=dict)
    malformed: int = 0
    conflicts: set[str] = field(default_factory=set)
    copies: int = 0


@dataclass
class Report:
    published_payments: int
    malformed: int
    conflicts: int
    status: Counter[str]
    parked_by_reason: Counter[str]
    lost: list[str]
    double_charged: list[str]
    charged_not_succeeded: list[str]
    """Keys the gateway's ledger charged whose payment did not end ``succeeded``."""
    gateway_requests: int
    charges: int
    queue_leftovers: dict[str, tuple[int, int]]
    card_numbers_found: list[str]
    faults: Counter[str]
    drain_seconds: float
    worker_restarts: int

    def table(self) -> str:
        rows = [
            ("payments published", self.published_payments),
            ("malformed messages published", self.malformed),
            ("same id, other amount published", self.conflicts),
            *((f"faults: {k}", v) for k, v in sorted(self.faults.items())),
            *((f"final: {k}", self.status[k]) for k in FINAL),
            *((f"parked: {k}", v) for k, v in sorted(self.parked_by_reason.items())),
            ("gateway requests", self.gateway_requests),
            ("charges", self.charges),
            ("lost", len(self.lost)),
            ("double-charged", len(self.double_charged)),
            ("charged, not succeeded", len(self.charged_not_succeeded)),
            ("card numbers found", len(self.card_numbers_found)),
            ("queues not empty", len(self.queue_leftovers)),
            ("time to drain (s)", f"{self.drain_seconds:.1f}"),
        ]
        width = max(len(k) for k, _ in rows)
        lines = [f"| {'measure'.ljust(width)} | value |", f"|{'-' * (width + 2)}|-------|"]
        lines += [f"| {k.ljust(width)} | {v} |" for k, v in rows]
        return "\n".join(lines)


class ChaosRun:
    def __init__(
        self,
        amqp_url: str,
        database_url: str,
        workdir: Path,
        *,
        delays: tuple[float, ...] = (0.2, 0.5, 1.0),
        max_attempts: int = 6,
        gateway_timeout: float = 0.5,
        prefetch: int = 50,
        extra_env: dict[str, str] | None = None,
        kill_after_charge: float = 0.0,
        seed: int | None = None,
        rabbitmq_node: str | None = None,
        observer_url: str | None = None,
    ) -> None:
        self.amqp_url = amqp_url
        # The harness's own connection (topology, publishing, queue counts); a run that stops a
        # cluster node points it at a node that stays up, away from the workers' balancer.
        self.observer_url = observer_url or amqp_url
        self.database_url = database_url
        self.workdir = workdir
        self.names = Names(f"chaos-{os.getpid()}-{random.Random().getrandbits(32):08x}")
        self.delays = delays
        self.max_attempts = max_attempts
        self.gateway_timeout = gateway_timeout
        self.prefetch = prefetch
        self.extra_env = extra_env or {}
        # Probability that a worker dies right after a gateway answer (tests.chaos.faults).
        self.kill_after_charge = kill_after_charge
        # Fresh payment ids per run: runs may share one database (PostgreSQL test runs).
        self.rng = random.Random(seed if seed is not None else random.getrandbits(64))
        self.rabbitmq_node = rabbitmq_node
        self.published = Published()
        self.faults: Counter[str] = Counter()
        self.gateway_port = free_port()
        self.gateway_url = f"http://127.0.0.1:{self.gateway_port}"
        self.gateway: subprocess.Popen[bytes] | None = None
        self.workers: dict[int, subprocess.Popen[bytes]] = {}
        self.proxies: dict[int, TcpProxy] = {}
        self.worker_restarts = 0
        self._logs: list[Any] = []
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._engine = make_engine(database_url)

    # ---- lifecycle ------------------------------------------------------------------------

    async def open(self, **gateway_flags: Any) -> None:
        self._connection = await aio_pika.connect_robust(self.observer_url)
        await declare_topology(self._connection, self.names, self.delays, 10)
        await create_schema(self._engine)
        args = ["--port", str(self.gateway_port), "--seed", "3"]
        for flag, value in gateway_flags.items():
            args += [f"--{flag.replace('_', '-')}", str(value)]
        self.gateway = self._spawn(["fake-gateway", *args], "gateway")
        async with httpx.AsyncClient() as client:
            for _ in range(200):
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(self.gateway_url + "/healthz")).status_code == 200:
                        return
                await asyncio.sleep(0.05)
        raise RuntimeError("fake gateway did not start")

    async def close(self) -> None:
        for proc in [*self.workers.values(), *([self.gateway] if self.gateway else [])]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [*self.workers.values(), *([self.gateway] if self.gateway else [])]:
            try:
                await asyncio.to_thread(proc.wait, 35)
            except subprocess.TimeoutExpired:
                proc.kill()
        for proxy in self.proxies.values():
            await proxy.close()
        for log in self._logs:
            log.close()
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await delete_topology(self._connection, self.names, self.delays)
            await self._connection.close()
        await self._engine.dispose()

    def _spawn(
        self,
        args: list[str],
        name: str,
        env: dict[str, str] | None = None,
        module: str = "processor",
    ) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("ab")
        self._logs.append(log)
        return subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def worker_env(self, index: int) -> dict[str, str]:
        amqp_url = self.proxies[index].url() if index in self.proxies else self.amqp_url
        return {
            "PAYPROC_AMQP_URL": amqp_url,
            "PAYPROC_DATABASE_URL": self.database_url,
            "PAYPROC_NAMESPACE": self.names.namespace,
            "PAYPROC_GATEWAY_URL": self.gateway_url,
            "PAYPROC_GATEWAY_TIMEOUT": str(self.gateway_timeout),
            "PAYPROC_RETRY_DELAYS": ",".join(f"{d:g}" for d in self.delays),
            "PAYPROC_MAX_ATTEMPTS": str(self.max_attempts),
            "PAYPROC_PREFETCH": str(self.prefetch),
            "PAYPROC_LOG_FORMAT": "json",
            "PAYPROC_METRICS_BIND": "127.0.0.1:0",
            "PAYPROC_LOG_LEVEL": "INFO",
            **self.extra_env,
        }

    async def start_worker(self, index: int, *, proxied: bool = False, **env: str) -> None:
        if proxied and index not in self.proxies:
            proxy = TcpProxy()
            await proxy.start()
            self.proxies[index] = proxy
        env = {**self.worker_env(index), **env}
        if self.kill_after_charge > 0:
            # The real worker command with the fault wrapped around its gateway adapter.
            args = [str(self.kill_after_charge), "--grace", "5"]
            self.workers[index] = self._spawn(args, f"worker-{index}", env, "tests.chaos.worker")
        else:
            self.workers[index] = self._spawn(["worker", "--grace", "5"], f"worker-{index}", env)

    async def kill_worker(self, index: int) -> None:
        """SIGKILL (no chance to clean up), then start a fresh process in its place. A worker
        found already dead was killed by the die-after-charge hook and is counted as such."""
        proc = self.workers[index]
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(proc.wait, 10)
            self.faults["worker SIGKILL"] += 1
        else:
            self.faults["worker died after charge (hook)"] += 1
        await self.start_worker(index)
        self.worker_restarts += 1

    async def restart_dead_workers(self) -> None:
        """Workers killed by the die-after-charge hook come back, as a supervisor would."""
        for index, proc in list(self.workers.items()):
            if proc.poll() is not None:
                self.faults["worker died after charge (hook)"] += 1
                await self.start_worker(index)
                self.worker_restarts += 1

    async def cut_connection(self, index: int) -> None:
        """Cut a worker's broker connection at the proxy (waits until it has one)."""
        deadline = time.monotonic() + 30
        while not self.proxies[index].live and time.monotonic() < deadline:
            await self.restart_dead_workers()  # the hook may have just killed it
            with contextlib.suppress(TimeoutError):
                await self.proxies[index].wait_live(timeout=0.5)
        if self.proxies[index].cut():
            self.faults["connection cut"] += 1

    async def gateway_config(self, **knobs: Any) -> None:
        async with httpx.AsyncClient() as client:
            answer = await client.post(self.gateway_url + "/_config", json=knobs)
            answer.raise_for_status()

    # ---- traffic --------------------------------------------------------------------------

    async def publish(
        self,
        payments: int,
        *,
        malformed: int = 0,
        duplicates: int = 0,
        conflicts: int = 0,
        decline_rate: float = 0.03,
        reject_rate: float = 0.02,
    ) -> None:
        assert self._connection is not None
        messages: list[aio_pika.Message] = []
        fresh = [generate_payment(self.rng, decline_rate, reject_rate) for _ in range(payments)]
        for body in fresh:
            self.published.valid[body["payment_id"]] = body
            messages.append(payment_message(body))
        for body in self.rng.sample(fresh, min(duplicates, len(fresh))):
            for _ in range(3):
                messages.append(payment_message(body))
                self.published.copies += 1
        for body in self.rng.sample(fresh, min(conflicts, len(fresh))):
            other = {**body, "amount": body["amount"] + 1}
            if other["amount"] % 1000 in (400, 401, 402, 403, 404, 409, 422):
                other["amount"] += 10
            messages.append(payment_message(other))
            self.published.conflicts.add(body["payment_id"])
        for body, content_type in malformed_messages(self.rng, malformed):
            messages.append(request_message(body, content_type=content_type))
        self.published.malformed += malformed
        self.rng.shuffle(messages)
        await publish_bodies(self._connection, self.names, messages)

    # ---- observation ------------------------------------------------------------------------

    async def final_count(self) -> int:
        table: Any = PaymentRow.__table__  # type: ignore[attr-defined]
        ids = list(self.published.valid)
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(table.c.payment_id).where(table.c.status.in_(FINAL)))
            final = {r[0] for r in rows}
        return sum(1 for pid in ids if pid in final)

    async def succeeded_ids(self) -> set[str]:
        table: Any = PaymentRow.__table__  # type: ignore[attr-defined]
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(table.c.payment_id).where(table.c.status == "succeeded")
            )
            return {r[0] for r in rows}

    def queue_depths(self) -> dict[str, tuple[int, int]]:
        """``{queue: (ready, unacked)}`` for this namespace, from rabbitmqctl."""
        node = ["-n", self.rabbitmq_node] if self.rabbitmq_node else []
        out = subprocess.run(
            [
                "rabbitmqctl",
                *node,
                "-q",
                "list_queues",
                "name",
                "messages_ready",
                "messages_unacknowledged",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        depths = {}
        for line in out.splitlines():
            parts = line.split()
            if (
                len(parts) == 3
                and parts[0].startswith(self.names.namespace + ".")
                and parts[1].isdigit()
            ):
                depths[parts[0]] = (int(parts[1]), int(parts[2]))
        return depths

    async def ready_counts(self) -> dict[str, int]:
        """Ready messages per queue, read live with passive declares (rabbitmqctl's figures
        for quorum queues lag by seconds).

        A broker that drops the harness's connection (a stopped node, close_all_connections)
        leaves the robust connection reconnecting for a moment; the count is read again once
        it is back instead of failing the run on the observer's own hiccup."""
        deadline = time.monotonic() + 60
        while True:
            try:
                return await self._read_ready_counts()
            except (RuntimeError, ConnectionError, aio_pika.exceptions.AMQPError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)

    async def _read_ready_counts(self) -> dict[str, int]:
        assert self._connection is not None
        channel = await self._connection.channel()
        counts = {}
        try:
            for name in [
                self.names.requests,
                self.names.dlq,
                *map(self.names.retry_queue, self.delays),
            ]:
                queue = await channel.declare_queue(name, passive=True, robust=False)
                counts[name] = int(queue.declaration_result.message_count or 0)
        finally:
            await channel.close()
        return counts

    async def leftovers(self) -> dict[str, tuple[int, int]]:
        ready = await self.ready_counts()
        unacked = {q: d[1] for q, d in self.queue_depths().items()}
        return {
            q: (ready.get(q, 0), unacked.get(q, 0))
            for q in set(ready) | set(unacked)
            if ready.get(q, 0) or unacked.get(q, 0)
        }

    async def stable_leftovers(self, patience: float = 15) -> dict[str, tuple[int, int]]:
        """Leftovers that persist: rabbitmqctl's unacked figure of a quorum queue lags the
        acks by a few seconds, so a non-empty answer is asked again before it counts."""
        deadline = time.monotonic() + patience
        while True:
            found = await self.leftovers()
            if not found or time.monotonic() > deadline:
                return found
            await asyncio.sleep(1)

    async def settle(self, timeout: float = 240, *, restart_dead: bool = True) -> float:
        """Wait until every valid payment is final and the work queues are empty."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if restart_dead:
                await self.restart_dead_workers()
            if await self.final_count() >= len(self.published.valid):
                busy = {q: d for q, d in (await self.leftovers()).items() if q != self.names.dlq}
                if not busy:
                    return time.monotonic() - started
            await asyncio.sleep(0.5)
        raise TimeoutError(
            f"not settled after {timeout} s: {await self.final_count()} of "
            f"{len(self.published.valid)} final; queues {await self.leftovers()}"
        )

    async def drain_dlq(self) -> list[aio_pika.abc.AbstractIncomingMessage]:
        assert self._connection is not None
        channel = await self._connection.channel()
        queue = await channel.get_queue(self.names.dlq, ensure=False)
        parked = []
        while (message := await queue.get(no_ack=False, fail=False)) is not None:
            parked.append(message)
            await message.ack()
        await channel.close()
        return parked

    async def verify(self, drain_seconds: float) -> Report:
        table: Any = PaymentRow.__table__  # type: ignore[attr-defined]
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(table.c.payment_id, table.c.status))).all()
        status_of = {r[0]: r[1] for r in rows}
        parked = await self.drain_dlq()
        by_park_id: dict[str, Any] = {}
        for message in parked:
            headers = message.headers or {}
            park_id = str(headers.get(h.PARK_ID))
            by_park_id.setdefault(park_id, message)
        reasons = Counter(str((m.headers or {}).get(h.REASON)) for m in by_park_id.values())
        parked_ids = {
            str((m.headers or {}).get(h.PAYMENT_ID))
            for m in by_park_id.values()
            if (m.headers or {}).get(h.REASON) != "invalid_message"
        }
        lost = [
            pid
            for pid in self.published.valid
            if status_of.get(pid) not in FINAL
            or (status_of.get(pid) == "dead_lettered" and pid not in parked_ids)
        ]
        async with httpx.AsyncClient() as client:
            stats = (await client.get(self.gateway_url + "/_stats")).json()
        status = Counter(status_of[pid] for pid in self.published.valid if pid in status_of)
        return Report(
            published_payments=len(self.published.valid),
            malformed=self.published.malformed,
            conflicts=len(self.published.conflicts),
            status=status,
            parked_by_reason=reasons,
            lost=lost,
            double_charged=list(stats["double_charged"]),
            charged_not_succeeded=sorted(
                key for key in stats["charges_by_key"] if status_of.get(key) != "succeeded"
            ),
            gateway_requests=int(stats["requests"]),
            charges=int(stats["charges"]),
            queue_leftovers=await self.stable_leftovers(),
            card_numbers_found=await self._scan_for_card_numbers(parked),
            faults=self.faults,
            drain_seconds=drain_seconds,
            worker_restarts=self.worker_restarts,
        )

    async def _scan_for_card_numbers(self, parked: list[Any]) -> list[str]:
        """Logs, every text column of the database, and every parked body and header."""
        found = []
        for log in self.workdir.glob("*.log"):
            for number, line in enumerate(log.read_text(errors="replace").splitlines()):
                if contains_card_number(line):
                    found.append(f"{log.name}:{number}")
        async with self._engine.connect() as conn:
            for name in ("payments", "payment_attempts"):
                for row in (await conn.execute(text(f"SELECT * FROM {name}"))).all():  # noqa: S608
                    hits = [v for v in row if isinstance(v, str) and contains_card_number(v)]
                    if hits:
                        found.append(f"db:{name}: {hits[0][:80]!r}")
        for message in parked:
            if contains_card_number(message.body.decode("utf-8", "replace")):
                found.append(f"dlq body {message.message_id}")
            if contains_card_number(str(message.headers)):
                found.append(f"dlq headers {message.message_id}")
        return found


def assert_invariants(report: Report, run: ChaosRun) -> None:
    """The promise: every payment final exactly once, none lost, none charged twice, and
    every payment the gateway charged ends ``succeeded`` (checked against its ledger)."""
    assert report.lost == [], f"lost payments: {report.lost[:5]}"
    assert report.double_charged == [], f"double charges: {report.double_charged[:5]}"
    assert report.charged_not_succeeded == [], (
        f"charged at the gateway but not succeeded: {report.charged_not_succeeded[:5]}"
    )
    final = report.status["succeeded"] + report.status["declined"] + report.status["dead_lettered"]
    assert final == report.published_payments
    parked_payments = report.status["dead_lettered"]
    invalid = report.parked_by_reason["invalid_message"]
    assert invalid == report.malformed + report.conflicts, report.parked_by_reason
    assert sum(report.parked_by_reason.values()) == parked_payments + invalid
    assert report.queue_leftovers == {}, report.queue_leftovers
    assert report.card_numbers_found == [], report.card_numbers_found


LOG_LINE = re.compile(r"^\{")
