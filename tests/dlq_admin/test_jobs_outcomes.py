"""Replay jobs with a real worker and gateway: outcomes followed until final, the canary
that pauses a job, and a paced job of 2,000 entries where every payment succeeds once."""

from __future__ import annotations

import asyncio

from aio_pika.abc import AbstractRobustConnection

from processor.producer import payment_message, publish_bodies
from tests.dlq_admin.conftest import VIEWER, Admin
from tests.dlq_admin.helpers import park_many, request_body
from tests.dlq_admin.jobs_support import (
    Job,
    control,
    create_job,
    get_job,
    replayed_attempts,
    wait_job,
)


async def test_a_failing_canary_pauses_the_job_until_the_cause_is_fixed(
    admin: Admin, start_worker, gateway, connection: AbstractRobustConnection
) -> None:
    """With the gateway still down the canary's payments park again: the job pauses itself,
    says why, and publishes nothing more. Fixed and resumed, the rest succeeds."""
    gateway.state.update_config({"failure_rate": 1.0})
    await start_worker(gateway_url=gateway.url, circuit_threshold=10_000)
    bodies = [request_body() for _ in range(20)]
    await publish_bodies(connection, admin.names, [payment_message(b) for b in bodies])
    await admin.wait_handled(20, timeout=60)

    job = await create_job(
        admin,
        reason="retries_exhausted",
        rate=50,
        canary={"size": 5, "max_failure_share": 0.2},
    )
    assert job["canary"] == {"size": 5, "max_failure_share": 0.2}
    paused = await wait_job(admin, job["id"], lambda j: j["state"] == "paused", timeout=90)
    assert paused["published"] == 5
    assert paused["failed"] == 5
    assert paused["waiting"] == 15
    assert paused["paused_reason"].startswith("canary: 5 of 5 replayed payments failed again")
    runner = admin.runtime.runner
    assert runner is not None
    assert not runner.is_running(job["id"])  # the job's own execution ended with the pause
    parked_again = [e for e in await admin.entries(status="parked", limit=100) if e["replay_of"]]
    assert len(parked_again) == 5
    metrics = await admin.client.get("/metrics", headers=VIEWER)
    assert "payproc_dlq_replay_jobs_self_paused 1.0" in metrics.text

    gateway.state.update_config({"failure_rate": 0.0})
    await control(admin, job["id"], "resume")
    done = await wait_job(admin, job["id"], lambda j: j["state"] == "completed", timeout=90)
    assert (done["published"], done["succeeded"], done["failed"], done["skipped"]) == (
        20,
        15,
        5,
        0,
    )
    attempts = await replayed_attempts(admin, [b["payment_id"] for b in bodies])
    rest = {b["payment_id"] for b in bodies} - {e["payment_id"] for e in parked_again}
    assert all(attempts[p] == 1 for p in rest)
    audit = (await admin.get("/audit", action="dlq.replay_job.resume"))["items"]
    assert [a["outcome"] for a in audit] == ["ok"]
    [paused_row] = (await admin.get("/audit", action="dlq.replay_job.self_pause"))["items"]
    assert (paused_row["actor"], paused_row["target"]) == (f"job:{job['id']}", f"job:{job['id']}")


async def test_two_thousand_entries_at_200_per_second_each_payment_succeeds_once(
    admin: Admin, start_worker, gateway, connection: AbstractRobustConnection
) -> None:
    """A 2,000-entry job at 200/s completes; every payment is requested from the gateway
    once and succeeds; the figures add up at every poll; the job never publishes faster
    than its rate (10% tolerance over the run)."""
    await start_worker(gateway_url=gateway.url, prefetch=100)
    bodies = await park_many(connection, admin.names, 2000)
    await admin.wait_handled(2000, timeout=120)

    job = await create_job(admin, reason="gateway_rejected", rate=200)
    assert job["total"] == 2000
    seen: list[Job] = []
    samples: list[tuple[float, int]] = []
    loop = asyncio.get_running_loop()

    def record(j: Job) -> bool:
        samples.append((loop.time(), j["published"]))
        return j["state"] == "completed"

    done = await wait_job(admin, job["id"], record, timeout=240, seen=seen)
    assert (done["published"], done["succeeded"], done["failed"], done["skipped"]) == (
        2000,
        2000,
        0,
        0,
    )
    assert len(seen) > 20  # the figures were checked at every one of these polls
    moving = [(t, n) for t, n in samples if 0 < n < 2000]
    (t0, n0), (t1, n1) = moving[0], moving[-1]
    assert (n1 - n0) / (t1 - t0) <= 220, (n1 - n0) / (t1 - t0)
    attempts = await replayed_attempts(admin, [b["payment_id"] for b in bodies])
    assert {b["payment_id"] for b in bodies} == set(attempts)
    assert set(attempts.values()) == {1}
    assert all(gateway.state.charge_count(b["payment_id"]) == 1 for b in bodies)
    final = await get_job(admin, job["id"])
    assert final["eta_seconds"] is None
