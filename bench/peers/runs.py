"""Drain runs of the peers, measured exactly like payproc's (``bench.payproc_runs``).

One run: a fresh queue name, a fresh database with the peers' ``payments`` table, a fresh
fake-gateway process; ``count`` payments published with the framework's own client (Celery
``apply_async``, Dramatiq ``send``; confirmed, persistent; four producer processes in parallel
because neither client pipelines confirms, and publishing is not what is timed); then the
framework's own worker command starts and the run is timed from the first payment a task
started to the last outcome row written. Checks: every payment succeeded, the queue is
empty, one gateway charge per payment, no double charge.

Worker set-ups (what their documentation recommends for I/O-bound tasks on 2 cores):

* Celery: ``--pool threads --concurrency 16 --prefetch-multiplier 4`` (64 unacked),
  ``acks_late``, without gossip/mingle/heartbeat;
* Dramatiq: ``-p 2 -t 8`` (2 processes x 8 threads; it prefetches 2 per thread).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bench.accounting import CpuWatch, RssSampler
from bench.common import (
    AMQP_URL,
    BIN,
    PEER_FINAL,
    ROOT,
    BenchError,
    Gateway,
    Proc,
    connect,
    delete_queues,
    python,
    queue_depth,
    short_id,
    wait_consumers,
)
from bench.database import Database
from bench.drain import measure_drain
from bench.figures import Run
from bench.peers.job import create_schema

PRODUCERS = 4


@dataclass(frozen=True)
class PeerConfig:
    framework: str  # "celery" | "dramatiq"
    db: str = "sqlite"
    count: int = 20_000
    latency: float = 0.0
    seed: int = 1
    celery_pool: str = "threads"
    concurrency: int = 16


def _amqp_url(framework: str) -> str:
    base = AMQP_URL.rstrip("/")
    return f"{base}//" if framework == "celery" else f"{base}/%2F"


def _worker_argv(config: PeerConfig, queue: str) -> list[str]:
    if config.framework == "celery":
        return [
            str(BIN / "celery"),
            "-A",
            "bench.peers.celery_job",
            "worker",
            "--pool",
            config.celery_pool,
            "--concurrency",
            str(config.concurrency),
            "--prefetch-multiplier",
            "4",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "WARNING",
            "-Q",
            queue,
        ]
    return [str(BIN / "dramatiq"), "bench.peers.dramatiq_job", "-p", "2", "-t", "8"]


def _queues(framework: str, queue: str) -> tuple[list[str], list[str]]:
    if framework == "celery":
        return [queue], [queue]
    return [queue, f"{queue}.DQ", f"{queue}.XQ"], []


async def _produce(config: PeerConfig, env: dict[str, str]) -> float:
    module = f"bench.peers.{config.framework}_job"
    loop = asyncio.get_running_loop()
    started = loop.time()
    producers = [
        Proc(
            f"{config.framework}-producer{part}",
            python(
                "-m",
                module,
                "produce",
                "--count",
                str(config.count),
                "--seed",
                str(config.seed),
                "--part",
                str(part),
                "--parts",
                str(PRODUCERS),
            ),
            env,
        )
        for part in range(PRODUCERS)
    ]
    await asyncio.gather(*(asyncio.to_thread(p.popen.wait) for p in producers))
    for producer in producers:
        if producer.popen.returncode != 0:
            raise BenchError(f"{producer.name} failed:\n{producer.tail()}")
    return config.count / (loop.time() - started)


async def drain(config: PeerConfig) -> Run:
    """One measured drain of ``config.count`` pre-filled payments by a peer framework."""
    queue = f"bench-{config.framework}-{short_id()}"
    label = f"{config.framework} {config.db} {config.latency * 1000:g}ms"
    db = Database(config.db, config.framework)
    connection = await connect()
    gateway: Gateway | None = None
    worker: Proc | None = None
    queues, exchanges = _queues(config.framework, queue)
    try:
        create_schema(db.url)
        # The gateway's start-up overlaps with publishing; neither is timed.
        gateway = Gateway(config.latency, seed=config.seed)
        env = {
            "BENCH_QUEUE": queue,
            "BENCH_AMQP_URL": _amqp_url(config.framework),
            "BENCH_DATABASE_URL": db.url,
            "PYTHONPATH": str(ROOT),
        }
        publish_rate = await _produce(config, env)
        env["BENCH_GATEWAY_URL"] = await gateway.ready()
        depth, _ = await queue_depth(connection, queue)
        if depth != config.count:
            raise BenchError(f"queue holds {depth} messages after publishing {config.count}")
        worker = Proc(f"{config.framework}-worker", _worker_argv(config, queue), env)
        sampler = RssSampler([worker.pid])
        sampler.start()
        # CPU is counted from the moment the workers consume (start-up excluded, as in the
        # timed window). Dramatiq: one consumer per worker process.
        consumers = 2 if config.framework == "dramatiq" else 1
        await wait_consumers(connection, queue, consumers, [worker])
        cpu = CpuWatch({"gateway": [gateway.proc.pid], "workers": [worker.pid]})
        cpu.start()
        return await measure_drain(
            label=label,
            count=config.count,
            db=db,
            final=PEER_FINAL,
            window_start="started_at",
            within=max(180.0, config.count / 50),
            procs=[worker],
            connection=connection,
            queue=queue,
            gateway=gateway,
            cpu=cpu,
            sampler=sampler,
            publish_rate=publish_rate,
            all_succeed=True,
        )
    finally:
        if worker is not None:
            worker.stop()
        if gateway is not None:
            gateway.stop()
        await delete_queues(connection, queues, exchanges)
        await connection.close()
        db.drop()
