"""Bounded chaos: real worker processes, the real broker and the fake gateway under faults.

Each scenario injects faults while payments flow, waits for everything to settle and then
checks the invariants of ``harness.assert_invariants``: nothing lost, nothing charged twice,
every payment in exactly one final state, every queue empty, no card number anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tests.chaos.harness import ChaosRun, assert_invariants

pytestmark = [pytest.mark.chaos, pytest.mark.slow]


@pytest.fixture
async def chaos(amqp_url: str, database_url: str, tmp_path: Path):
    runs: list[ChaosRun] = []

    def make(**kwargs) -> ChaosRun:
        run = ChaosRun(amqp_url, database_url, tmp_path, **kwargs)
        runs.append(run)
        return run

    yield make
    for run in runs:
        await run.close()


async def test_gateway_faults_worker_kills_and_bad_input(chaos) -> None:
    """2,000 payments through 503s, 429s, timeouts, lost responses, SIGKILLs, dying workers,
    cut connections, duplicates and malformed input: none lost, none charged twice."""
    run = chaos(extra_env={"PAYPROC_CHAOS_KILL_AFTER_CHARGE": "0.002"})
    await run.open(
        failure_rate=0.2,
        rate_limit_rate=0.03,
        retry_after=0.3,
        timeout_rate=0.01,
        charge_then_timeout_rate=0.03,
        hang_seconds=1.5,
        latency=0.002,
    )
    await run.start_worker(0, proxied=True)
    await run.start_worker(1)
    await run.publish(2000, malformed=300, duplicates=20, conflicts=5)
    for round_ in range(3):
        await run.restart_dead_workers()
        await asyncio.sleep(1.5)  # let work get in flight: faults land mid-stream, by design
        await run.kill_worker(1)
        if round_ < 2:
            await run.cut_connection(0)
    drain = await run.settle(timeout=240)
    report = await run.verify(drain)
    print("\n" + report.table())
    assert_invariants(report, run)
    assert report.parked_by_reason["gateway_rejected"] > 0
    assert report.status["declined"] > 0
    assert report.faults["worker SIGKILL"] + report.faults["worker died after charge (hook)"] >= 3
    assert report.faults["connection cut"] == 2


async def test_outage_longer_than_the_ladder_does_not_park_the_backlog(chaos) -> None:
    """A full outage many times longer than the whole retry ladder opens the circuit; when
    the gateway heals every payment succeeds and none is parked as retries_exhausted."""
    run = chaos(
        delays=(0.1, 0.2),
        max_attempts=3,
        extra_env={"PAYPROC_CIRCUIT_THRESHOLD": "5", "PAYPROC_CIRCUIT_COOLDOWN": "0.5"},
    )
    await run.open(latency=0.005)
    await run.start_worker(0)
    await run.publish(300, decline_rate=0, reject_rate=0)
    await run.gateway_config(outage=True)
    run.faults["gateway outage (s)"] = 6
    await asyncio.sleep(6)  # the outage itself: 20x the 0.3 s ladder
    await run.gateway_config(outage=False)
    drain = await run.settle(timeout=120)
    report = await run.verify(drain)
    print("\n" + report.table())
    assert_invariants(report, run)
    assert report.parked_by_reason["retries_exhausted"] == 0
    assert report.status["succeeded"] == 300
    assert report.worker_restarts == 0
    log = (run.workdir / "worker-0.log").read_text()
    assert "circuit open" in log


async def test_database_locked_for_a_while_makes_messages_wait(chaos) -> None:
    """While the store is locked (SQLite: an exclusive file lock; PostgreSQL: an exclusive
    table lock), payments wait unacked; afterwards all complete and none is parked or lost.
    Malformed messages mixed in are parked once each, with no gateway call and no restart."""
    run = chaos()
    await run.open(latency=0.005)
    await run.start_worker(0)
    await run.publish(400, malformed=200, decline_rate=0, reject_rate=0)
    run.faults["database locked (s)"] = 4
    async with lock_store(run.database_url):
        await asyncio.sleep(4)  # the fault's duration
    drain = await run.settle(timeout=120)
    report = await run.verify(drain)
    print("\n" + report.table())
    assert_invariants(report, run)
    assert report.status["succeeded"] == 400
    assert report.parked_by_reason["invalid_message"] == 200
    assert report.gateway_requests == 400, "one call per valid payment, none for malformed"
    assert report.worker_restarts == 0
    assert run.workers[0].poll() is None


@contextlib.asynccontextmanager
async def lock_store(database_url: str) -> AsyncIterator[None]:
    if database_url.startswith("sqlite"):
        lock = sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=30)
        lock.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            lock.rollback()
            lock.close()
        return
    conn = await asyncpg.connect(database_url)
    try:
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute("LOCK TABLE payments IN ACCESS EXCLUSIVE MODE")
        try:
            yield
        finally:
            await transaction.rollback()
    finally:
        await conn.close()


async def test_bulk_replay_after_the_gateway_heals_charges_each_payment_once(
    chaos, amqp_url: str
) -> None:
    """Payments parked as retries_exhausted during a failure storm (some charged before their
    response was lost) are bulk-replayed after the gateway heals: all succeed, none twice."""
    import httpx

    from dlq_admin.runtime import AdminRuntime, start_server
    from processor.config import Settings

    run = chaos(
        delays=(0.1, 0.2),
        max_attempts=2,
        extra_env={"PAYPROC_CIRCUIT_THRESHOLD": "10000"},  # let the ladder run out
    )
    await run.open(failure_rate=0.85, charge_then_timeout_rate=0.15, hang_seconds=1.0)
    await run.start_worker(0)
    await run.publish(300, decline_rate=0, reject_rate=0)
    await run.settle(timeout=180)
    settings = Settings(
        amqp_url=amqp_url,
        database_url=run.database_url,
        namespace=run.names.namespace,
        retry_delays=run.delays,
        admin_token="chaos-operator-token",
    )
    headers = {"Authorization": "Bearer chaos-operator-token"}
    async with AdminRuntime(settings) as admin:
        assert admin.app is not None
        server = await start_server(admin.app)
        try:
            async with httpx.AsyncClient(base_url=server.url, headers=headers) as client:
                exhausted = run.published.valid.keys() - await run.succeeded_ids()
                run.faults["parked retries_exhausted"] = len(exhausted)
                assert exhausted, "the storm should have exhausted some payments"
                while (await client.get("/dlq/stats")).json()["parked"] < len(exhausted):
                    await asyncio.sleep(0.2)  # the admin ingests the DLQ in the background
                await run.gateway_config(failure_rate=0.0, charge_then_timeout_rate=0.0)
                answer = await client.post(
                    "/dlq/replay", json={"reason": "retries_exhausted", "limit": 10_000}
                )
                assert answer.status_code == 202, answer.text  # a replay job
                job = answer.json()
                assert job["total"] == len(exhausted)
                while job["state"] != "completed":
                    await asyncio.sleep(0.2)  # the job publishes and follows the payments
                    job = (await client.get(f"/dlq/replay-jobs/{job['id']}")).json()
                assert (job["published"], job["succeeded"]) == (len(exhausted), len(exhausted))
                while len(await run.succeeded_ids()) < len(run.published.valid):
                    await asyncio.sleep(0.2)
        finally:
            await server.stop()
    drain = await run.settle(timeout=120)
    report = await run.verify(drain)
    print("\n" + report.table())
    assert_invariants(report, run)
    assert report.status["succeeded"] == 300
    assert report.charges == 300
