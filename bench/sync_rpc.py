"""Synchronous charges per second and p50/p99 latency at 50 concurrent callers.

What runs: a fake gateway process, a worker process and the gRPC front door process
(``payproc grpc``), all on a fresh namespace and a temporary SQLite database; this process is
the 50 callers, sharing one gRPC channel, each charging a new payment and waiting for its
final result. ``via="rpc"`` skips the gRPC hop and calls ``processor.rpc_client`` directly,
to show what gRPC adds.

``await run(...)`` returns a ``SyncFigures`` (``bench.run`` calls it); ``python -m bench.sync_rpc``
prints one line. Needs RabbitMQ at ``PAYPROC_AMQP_URL`` (or ``--amqp-url``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.results import SyncFigures

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_AMQP_URL = os.environ.get("PAYPROC_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
_GATEWAY_LINE = re.compile(r"fake gateway listening on (http://\S+)")
_GRPC_LINE = re.compile(r"payproc grpc listening on (\S+)")


class _Process:
    """A ``python -m processor ...`` child whose output goes to a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log = log_dir / f"{name}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "processor", *args],
                cwd=ROOT,
                env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def wait_for_line(self, pattern: re.Pattern[str], within: float = 60) -> str:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            match = pattern.search(self.log.read_text(errors="replace"))
            if match:
                return match.group(1)
            if self.proc.poll() is not None:
                break
            await asyncio.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start; its log:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _payment(rng: random.Random) -> dict[str, Any]:
    from processor.producer import generate_payment

    return generate_payment(rng)


async def _drive(
    call: Callable[[dict[str, Any]], Awaitable[str]],
    count: int,
    concurrency: int,
    seed: int,
) -> tuple[list[float], dict[str, int], float]:
    """``concurrency`` callers share ``count`` charges; latencies in seconds, wall time."""
    rng = random.Random(seed)
    payments = [_payment(rng) for _ in range(count)]
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    next_index = 0

    async def caller() -> None:
        nonlocal next_index
        while next_index < len(payments):
            body = payments[next_index]
            next_index += 1
            started = time.perf_counter()
            try:
                outcome = await call(body)
            except Exception as exc:
                outcome = f"error:{type(exc).__name__}:{getattr(exc, 'code', lambda: '')()}"
            latencies.append(time.perf_counter() - started)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return latencies, outcomes, time.perf_counter() - started


def _grpc_caller(target: str) -> tuple[Callable[[dict[str, Any]], Awaitable[str]], Any]:
    import grpc

    from processor.grpc_api.codegen import load

    generated = load()
    channel = grpc.aio.insecure_channel(target)
    stub = generated.pb2_grpc.PaymentsStub(channel)
    names = generated.pb2.PaymentStatus.Name

    async def call(body: dict[str, Any]) -> str:
        result = await stub.Charge(generated.pb2.ChargeRequest(**body), timeout=60)
        return str(names(result.status)).removeprefix("PAYMENT_STATUS_").lower()

    return call, channel


async def run(
    *,
    count: int = 2000,
    concurrency: int = 50,
    warmup: int = 100,
    via: str = "grpc",
    amqp_url: str = DEFAULT_AMQP_URL,
    prefetch: int = 100,
    seed: int = 11,
) -> SyncFigures:
    """Measure synchronous charges; returns throughput, latency percentiles and outcomes."""
    import aio_pika

    from processor.rpc_client import RpcClient
    from retry.names import Names
    from retry.policy import parse_delays
    from retry.topology import delete_topology

    if via not in ("grpc", "rpc"):
        raise ValueError("via is 'grpc' or 'rpc'")
    namespace = f"bench-sync-{uuid.uuid4().hex[:8]}"
    delays = "1,5,30,120,600"
    with tempfile.TemporaryDirectory(prefix="payproc-bench-sync-") as tmp:
        log_dir = Path(tmp)
        env = {
            "PAYPROC_AMQP_URL": amqp_url,
            "PAYPROC_NAMESPACE": namespace,
            "PAYPROC_DATABASE_URL": f"sqlite:///{log_dir / 'bench.db'}",
            "PAYPROC_PREFETCH": str(prefetch),
            "PAYPROC_RETRY_DELAYS": delays,
            "PAYPROC_LOG_LEVEL": "WARNING",
        }
        processes: list[_Process] = []
        closers: list[Callable[[], Awaitable[Any]]] = []
        try:
            gateway = _Process("gateway", ["fake-gateway", "--port", "0"], env, log_dir)
            processes.append(gateway)
            gateway_url = await gateway.wait_for_line(_GATEWAY_LINE)
            env["PAYPROC_GATEWAY_URL"] = gateway_url
            processes.append(_Process("worker", ["worker"], env, log_dir))
            if via == "grpc":
                front = _Process("grpc", ["grpc", "--bind", "127.0.0.1:0"], env, log_dir)
                processes.append(front)
                target = await front.wait_for_line(_GRPC_LINE)
                call, channel = _grpc_caller(target)
                closers.append(channel.close)
            else:
                from retry.topology import declare_topology

                client = await RpcClient.connect(amqp_url, namespace)
                closers.append(client.close)
                await declare_topology(
                    client.connection, Names(namespace), parse_delays(delays), 10
                )

                async def call(body: dict[str, Any]) -> str:
                    return (await client.charge(body, timeout=60)).status.value

            # Warm-up waits for the worker to consume, fills connection pools and caches.
            await _drive(call, warmup, min(concurrency, warmup), seed + 1)
            latencies, outcomes, seconds = await _drive(call, count, concurrency, seed)
        finally:
            for close in closers:
                with contextlib.suppress(Exception):
                    await close()
            for process in reversed(processes):
                process.stop()
            with contextlib.suppress(Exception):
                connection = await aio_pika.connect_robust(amqp_url)
                try:
                    await delete_topology(connection, Names(namespace), parse_delays(delays))
                finally:
                    await connection.close()
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    errors = sum(n for outcome, n in outcomes.items() if outcome.startswith("error"))
    return SyncFigures(
        name=f"sync charges via {via}",
        via=via,
        concurrency=concurrency,
        count=count,
        errors=errors,
        outcomes=outcomes,
        seconds=round(seconds, 3),
        charges_per_s=round(count / seconds, 1),
        p50_ms=round(cuts[49] * 1000, 2),
        p99_ms=round(cuts[98] * 1000, 2),
        max_ms=round(max(latencies) * 1000, 2),
    )


def format_result(result: SyncFigures) -> str:
    return (
        f"{result.name}: {result.charges_per_s:.0f} charges/s, "
        f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms at "
        f"{result.concurrency} concurrent callers ({result.count} charges, "
        f"{result.errors} errors)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sync_rpc", description=__doc__)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--via", choices=("grpc", "rpc"), default="grpc")
    parser.add_argument("--amqp-url", default=DEFAULT_AMQP_URL)
    ns = parser.parse_args(argv)
    result = asyncio.run(
        run(
            count=ns.count,
            concurrency=ns.concurrency,
            warmup=ns.warmup,
            via=ns.via,
            amqp_url=ns.amqp_url,
        )
    )
    print(format_result(result), flush=True)
    return 1 if result.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
