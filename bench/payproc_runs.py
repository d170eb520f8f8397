"""payproc workers draining a pre-filled queue: the figure a payment team compares.

What one run does: a fresh namespace, a fresh database (SQLite file or PostgreSQL database)
and a fresh fake-gateway process; ``count`` payments (``processor.producer``'s message, the
one producers publish) are published confirmed and persistent to ``N``/``payment.request``;
then ``workers`` real ``python -m processor worker`` processes start, and the run is timed
from the first payment claimed to the last payment's row becoming final. The run passes
only if every payment ended ``succeeded`` (or, with failures injected, final), the queue is
empty, and the gateway's ledger shows exactly one charge per payment and no double charge.

Why: "payments per second to drain a backlog" is the number that sizes a deployment; the
zero-latency gateway makes it the cost of payproc's own per-payment work (decode, claim,
charge call, outcome commit, event publish, ack); with 50 ms of gateway latency it shows how
well in-flight concurrency (prefetch) hides a slow gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bench.accounting import CpuWatch, RssSampler
from bench.common import (
    AMQP_URL,
    PAYPROC_FINAL,
    BenchError,
    Gateway,
    Proc,
    connect,
    python,
    queue_depth,
    short_id,
    wait_consumers,
)
from bench.database import Database
from bench.drain import measure_drain
from bench.figures import Run

DEFAULT_DELAYS = "1,5,30,120,600"


@dataclass(frozen=True)
class PayprocConfig:
    workers: int = 1
    db: str = "sqlite"
    count: int = 20_000
    latency: float = 0.0
    prefetch: int = 100
    failure_rate: float = 0.0
    retry_delays: str = DEFAULT_DELAYS
    max_attempts: int = 6
    seed: int = 1
    paced_rate: float = 0.0
    """When > 0: no pre-fill; ``count`` payments are published at this rate once the workers
    consume (an open-loop load below capacity, for retry-delay accuracy)."""


async def prefill(connection: Any, namespace: str, count: int, seed: int, config: Any) -> float:
    """Declare the namespace's topology and publish ``count`` payments (confirmed); returns
    the publish rate in messages/s."""
    from processor.producer import generate_payments, payment_message, publish_bodies
    from retry.names import Names
    from retry.policy import parse_delays
    from retry.topology import declare_topology

    names = Names(namespace)
    await declare_topology(connection, names, parse_delays(config.retry_delays), 10)
    messages = (payment_message(p) for p in generate_payments(count, seed))
    started = time.perf_counter()
    sent = await publish_bodies(connection, names, messages)
    seconds = time.perf_counter() - started
    if sent != count:
        raise BenchError(f"published {sent} of {count}")
    return sent / seconds if count else 0.0


async def publish_paced(
    connection: Any, namespace: str, count: int, seed: int, rate: float
) -> float:
    """Publish ``count`` payments at ``rate``/s in 50 ms slices (confirmed); returns the rate
    achieved."""
    from processor.producer import generate_payments, payment_message, publish_bodies
    from retry.names import Names

    names = Names(namespace)
    payments = list(generate_payments(count, seed))
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent = 0
    while sent < count:
        due = min(count, int((loop.time() - started) * rate) + 1)
        if due > sent:
            batch = (payment_message(p) for p in payments[sent:due])
            sent += await publish_bodies(connection, names, batch)
        await asyncio.sleep(0.05)
    return count / (loop.time() - started)


async def cleanup_namespace(connection: Any, namespace: str, delays: str) -> None:
    from retry.names import Names
    from retry.policy import parse_delays
    from retry.topology import delete_topology

    with contextlib.suppress(Exception):
        await delete_topology(connection, Names(namespace), parse_delays(delays))


def launch_migrate(env: dict[str, str]) -> Proc:
    """``payproc db upgrade`` on the fresh database (the worker refuses an empty PostgreSQL
    schema; SQLite would upgrade itself, but doing it first keeps it out of the timing)."""
    return Proc("db-upgrade", python("-m", "processor", "db", "upgrade"), env)


async def finish_migrate(proc: Proc) -> None:
    if await asyncio.to_thread(proc.popen.wait) != 0:
        raise BenchError(f"payproc db upgrade failed:\n{proc.tail()}")


async def migrate(env: dict[str, str]) -> None:
    await finish_migrate(launch_migrate(env))


Inspect = Callable[[Database, Run], Awaitable[None]]


async def drain(config: PayprocConfig, inspect: Inspect | None = None) -> Run:
    """One measured drain of ``config.count`` pre-filled payments by payproc workers."""
    namespace = f"bench-pp-{short_id()}"
    label = f"payproc {config.workers}w {config.db} {config.latency * 1000:g}ms p{config.prefetch}"
    db = Database(config.db, "pp")
    connection = await connect()
    gateway: Gateway | None = None
    workers: list[Proc] = []
    migration: Proc | None = None
    try:
        env = {
            "PAYPROC_AMQP_URL": AMQP_URL,
            "PAYPROC_NAMESPACE": namespace,
            "PAYPROC_DATABASE_URL": db.url,
            "PAYPROC_PREFETCH": str(config.prefetch),
            "PAYPROC_RETRY_DELAYS": config.retry_delays,
            "PAYPROC_MAX_ATTEMPTS": str(config.max_attempts),
            "PAYPROC_METRICS_BIND": "off",
            "PAYPROC_LOG_LEVEL": "WARNING",
        }
        # Gateway and schema start-up overlap with pre-filling; none of it is timed.
        gateway = Gateway(config.latency, config.failure_rate, seed=config.seed)
        migration = launch_migrate(env)
        publish_rate = await prefill(
            connection, namespace, 0 if config.paced_rate else config.count, config.seed, config
        )
        depth, _ = await queue_depth(connection, f"{namespace}.requests")
        if depth != (0 if config.paced_rate else config.count):
            raise BenchError(f"queue holds {depth} messages after pre-filling {config.count}")
        env["PAYPROC_GATEWAY_URL"] = await gateway.ready()
        await finish_migrate(migration)
        for index in range(config.workers):
            workers.append(
                Proc(f"worker{index}", python("-m", "processor", "worker", "--grace", "5"), env)
            )
        sampler = RssSampler([w.pid for w in workers])
        sampler.start()
        # CPU is counted from the moment the workers consume (start-up excluded, as in the
        # timed window).
        await wait_consumers(connection, f"{namespace}.requests", config.workers, workers)
        cpu = CpuWatch({"gateway": [gateway.proc.pid], "workers": [w.pid for w in workers]})
        cpu.start()
        if config.paced_rate:
            publish_rate = await publish_paced(
                connection, namespace, config.count, config.seed, config.paced_rate
            )
        run = await measure_drain(
            label=label,
            count=config.count,
            db=db,
            final=PAYPROC_FINAL,
            window_start="created_at",
            within=max(120.0, config.count / 100),
            procs=workers,
            connection=connection,
            queue=f"{namespace}.requests",
            gateway=gateway,
            cpu=cpu,
            sampler=sampler,
            publish_rate=publish_rate,
            all_succeed=config.failure_rate == 0,
        )
        succeeded = run.checks.statuses.get("succeeded", 0)
        run.goodput = round(succeeded / run.seconds, 1)
        if run.checks.charges != succeeded:
            raise BenchError(
                f"gateway charged {run.checks.charges} but "
                f"{run.checks.statuses.get('succeeded')} succeeded"
            )
        run.circuit_opens = sum(w.log.read_text(errors="replace").count("-> open") for w in workers)
        if inspect is not None:
            await inspect(db, run)
        return run
    finally:
        if migration is not None:
            migration.stop()
        for worker in workers:
            worker.stop()
        if gateway is not None:
            gateway.stop()
        await cleanup_namespace(connection, namespace, config.retry_delays)
        await connection.close()
        db.drop()
