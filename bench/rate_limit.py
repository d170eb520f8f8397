"""``PAYPROC_GATEWAY_RATE_LIMIT`` accuracy: the rate the gateway sees against the limit.

What one run does: a fresh namespace and SQLite database, a fake gateway that enforces the
limit itself (token bucket, 429 + ``Retry-After`` above it), ``workers`` payproc workers
with ``PAYPROC_GATEWAY_RATE_LIMIT`` set to the same limit. Once every worker has logged its
share (``limit / workers``), a backlog of ``seconds x limit x 1.2`` payments is published
and drained. The gateway's request counter is sampled every 0.25 s; the measured rate is
the requests from one second after the first request until 85% of all requests were
seen, divided by that time (the tail is left out: after a SIGKILL the dead worker's payments
wait for their lease to expire). The churn variant starts 2 workers, adds a third at a third of the
drain and SIGKILLs one at two thirds.

Targets: measured rate within +-10% of the limit; 429s from the gateway's own limiter under
1% of requests; every payment succeeded, none charged twice.

    python -m bench.rate_limit            # 200/s with 1, 2, 4 workers and the churn run
    python -m bench.rate_limit --quick    # 100/s, shorter
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import signal
import time
from dataclasses import dataclass
from typing import Any

import httpx

from bench.common import (
    AMQP_URL,
    PAYPROC_FINAL,
    BenchError,
    Proc,
    connect,
    log,
    python,
    short_id,
)
from bench.database import Database, wait_drained
from bench.figures import DrainChecks, Figure, RateAccuracy, Run
from bench.payproc_runs import cleanup_namespace, migrate
from processor.producer import generate_payments, payment_message, publish_bodies
from retry.names import Names
from retry.policy import parse_delays
from retry.topology import declare_topology

DELAYS = "0.2,0.5,1"
_GATEWAY_LINE = re.compile(r"fake gateway listening on (http://\S+)")
_SHARE_LINE = r"gateway rate share: \S+ over {n} workers"


@dataclass(frozen=True)
class RateConfig:
    limit: float = 200.0
    workers: int = 1
    seconds: float = 10.0
    churn: bool = False
    """Start 2 workers, add one at 1/3 of the drain, SIGKILL one at 2/3."""

    @property
    def key(self) -> str:
        """The figure's key in a benchmark run (``bench.results.RATE_LIMIT_SHAPES``)."""
        return f"rate_limit.{self.workers}w{'.churn' if self.churn else ''}"

    @property
    def label(self) -> str:
        shape = "2 -> 3 -> 2 workers (added, killed)" if self.churn else f"{self.workers}w"
        return f"rate limit {self.limit:g}/s, {shape}"


def measured_rate(
    samples: list[tuple[float, int]], margin: float = 1.0, upto: float = 0.85
) -> tuple[float, float]:
    """(requests/s, seconds) from ``margin`` s after the first request to the moment the
    gateway had seen ``upto`` of all requests, from ``(time, requests so far)`` samples.

    The tail is left out: after a SIGKILL the dead worker's payments wait for their lease to
    expire, a pause with no demand that says nothing about the limiter."""
    moving = [(t, n) for t, n in samples if n > 0]
    if len(moving) < 2:
        return 0.0, 0.0
    first = moving[0][0]
    end = next(t for t, n in moving if n >= upto * moving[-1][1])
    inside = [(t, n) for t, n in moving if first + margin <= t <= end]
    if len(inside) < 2:
        inside = [moving[0], next((t, n) for t, n in moving if t >= end)]
    (t0, n0), (t1, n1) = inside[0], inside[-1]
    return ((n1 - n0) / (t1 - t0) if t1 > t0 else 0.0), t1 - t0


async def _sample(url: str, into: list[tuple[float, int]], stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        while not stop.is_set():
            with contextlib.suppress(httpx.HTTPError):
                stats = (await client.get(url + "/_stats", params={"summary": "1"})).json()
                into.append((time.monotonic(), int(stats["requests"])))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.25)


def _stats(url: str) -> dict[str, Any]:
    answer = httpx.get(url + "/_stats", params={"summary": "1"}, timeout=10)
    answer.raise_for_status()
    stats: dict[str, Any] = answer.json()
    return stats


async def run_once(config: RateConfig) -> Run:
    namespace = f"bench-rl-{short_id()}"
    db = Database("sqlite", "rl")
    connection = await connect()
    count = int(config.seconds * config.limit * 1.2)
    env = {
        "PAYPROC_AMQP_URL": AMQP_URL,
        "PAYPROC_NAMESPACE": namespace,
        "PAYPROC_DATABASE_URL": db.url,
        "PAYPROC_RETRY_DELAYS": DELAYS,
        "PAYPROC_METRICS_BIND": "off",
        "PAYPROC_LOG_LEVEL": "INFO",
        "PAYPROC_GATEWAY_RATE_LIMIT": f"{config.limit:g}",
        "PAYPROC_GATEWAY_TIMEOUT": "1",
    }
    gateway = Proc(
        "gateway-rl",
        python(
            "-m", "processor", "fake-gateway", "--port", "0", "--rate-limit", f"{config.limit:g}"
        ),
        {},
    )
    workers: list[Proc] = []
    try:
        env["PAYPROC_GATEWAY_URL"] = url = await gateway.wait_for_line(_GATEWAY_LINE)
        await migrate(env)
        await declare_topology(connection, Names(namespace), parse_delays(DELAYS), 10)

        def start_worker() -> Proc:
            proc = Proc(f"worker-rl{len(workers)}", python("-m", "processor", "worker"), env)
            workers.append(proc)
            return proc

        initial = 2 if config.churn else config.workers
        for _ in range(initial):
            start_worker()
        share = re.compile("(" + _SHARE_LINE.format(n=initial) + ")")
        for proc in workers:
            await proc.wait_for_line(share, within=60)
        samples: list[tuple[float, int]] = []
        stop = asyncio.Event()
        sampler = asyncio.create_task(_sample(url, samples, stop))
        await _publish(connection, namespace, count)
        if config.churn:
            await asyncio.sleep(config.seconds / 3)  # the run's schedule, not a synchronisation
            start_worker()
            await asyncio.sleep(config.seconds / 3)
            victim = workers[0]
            with contextlib.suppress(ProcessLookupError):
                victim.popen.send_signal(signal.SIGKILL)
            await asyncio.to_thread(victim.popen.wait, 10)
        alive = [w for w in workers if w.alive()]
        await wait_drained(
            db, "payments", PAYPROC_FINAL, count, within=config.seconds * 6 + 60, procs=alive
        )
        stop.set()
        await sampler
        rate, seconds = measured_rate(samples)
        stats = await asyncio.to_thread(_stats, url)
        statuses = db.status_counts()
        limited = int(stats["protection"]["rate_limited"])
        requests = int(stats["requests"])
        run = Run(
            label=config.label,
            count=round(rate * seconds),
            seconds=seconds,
            checks=DrainChecks(
                double_charged=len(stats["double_charged"]),
                statuses=statuses,
                gateway_requests=requests,
            ),
            limiter=RateAccuracy(
                limit=config.limit,
                rate=round(rate, 1),
                accuracy_pct=round(100 * rate / config.limit, 1),
                gateway_429=limited,
                gateway_429_pct=round(100 * limited / requests, 2) if requests else 0.0,
            ),
        )
        if stats["double_charged"]:
            raise BenchError(f"double charges: {len(stats['double_charged'])}")
        if statuses.get("succeeded", 0) != count:
            raise BenchError(f"not every payment succeeded: {statuses}")
        return run
    finally:
        for proc in workers:
            proc.stop()
        gateway.stop()
        await cleanup_namespace(connection, namespace, DELAYS)
        await connection.close()
        db.drop()


async def _publish(connection: Any, namespace: str, count: int) -> None:
    messages = (payment_message(p) for p in generate_payments(count))
    await publish_bodies(connection, Names(namespace), messages)


def configurations(limit: float = 200.0, seconds: float = 10.0) -> list[RateConfig]:
    shapes = [RateConfig(limit, n, seconds) for n in (1, 2, 4)]
    return [*shapes, RateConfig(limit, 2, seconds * 1.5, churn=True)]


async def figures(limit: float = 200.0, seconds: float = 10.0) -> list[Figure]:
    """One figure per shape (the hook for ``bench.run``): its rate is the gateway's measured
    requests/s; its run's ``limiter`` holds the accuracy against the limit and the 429 share."""
    result = []
    for config in configurations(limit, seconds):
        figure = Figure(config.key, config.label, unit="gateway requests/s")
        try:
            figure.runs.append(await run_once(config))
            log(f"{config.label}: {figure.runs[-1]}")
        except Exception as exc:
            figure.error = f"{type(exc).__name__}: {str(exc)[:600]}"
            log(f"{config.label}: FAILED: {figure.error}")
        result.append(figure)
    return result


def table(found: list[Figure]) -> str:
    lines = [
        "| shape | limit | measured | accuracy | gateway 429s |",
        "|---|---|---|---|---|",
    ]
    for figure in found:
        run = figure.median_run()
        limiter = run.limiter if run is not None else None
        if limiter is None:
            lines.append(f"| {figure.label} | | failed: {figure.error} | | |")
            continue
        lines.append(
            f"| {figure.label} | {limiter.limit:g}/s | {limiter.rate:.1f}/s | "
            f"{limiter.accuracy_pct:.1f}% | {limiter.gateway_429} ({limiter.gateway_429_pct}%) |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rate_limit")
    parser.add_argument("--quick", action="store_true", help="100/s, 5 s per shape")
    args = parser.parse_args(argv)
    limit, seconds = (100.0, 5.0) if args.quick else (200.0, 10.0)
    found = asyncio.run(figures(limit, seconds))
    print(table(found))
    return 0 if all(f.ok for f in found) else 1


if __name__ == "__main__":
    raise SystemExit(main())
