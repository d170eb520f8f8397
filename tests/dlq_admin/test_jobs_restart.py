"""Replay jobs across admin processes: kill -9 an admin mid-job and start another, and the
retention purge of old discarded and replayed entries."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import pytest
from aio_pika.abc import AbstractRobustConnection

from tests.dlq_admin.conftest import OPERATOR, TOKENS, StartAdmin
from tests.dlq_admin.helpers import eventually, park_many
from tests.dlq_admin.jobs_support import create_job, get_job, replayed_attempts, wait_job
from tests.support.processes import processes


async def test_an_admin_killed_mid_job_is_replaced_and_the_job_completes_charging_once(
    start_admin: StartAdmin,
    start_worker,
    gateway,
    connection: AbstractRobustConnection,
    tmp_path: Path,
) -> None:
    """An admin process runs a 400-entry job at 100/s and is killed -9 mid-job. A new admin
    process takes the job over once the lease expired and completes it: every payment is
    requested from the gateway once and succeeds."""
    api = await start_admin(run_jobs=False)  # ingest and API only: runs no job itself
    await start_worker(gateway_url=gateway.url, prefetch=100)
    bodies = await park_many(connection, api.names, 400)
    await api.wait_handled(400, timeout=60)
    settings = api.runtime.settings
    env = {
        "PAYPROC_AMQP_URL": settings.amqp_url,
        "PAYPROC_DATABASE_URL": settings.database_url,
        "PAYPROC_NAMESPACE": settings.namespace,
        "PAYPROC_ADMIN_TOKENS": TOKENS,
        "PAYPROC_ADMIN_TOKEN": "",
        "PAYPROC_ADMIN_JOB_LEASE": "2",
        "PAYPROC_ADMIN_JOB_POLL": "0.2",
    }
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PAYPROC_")}, **env}

    with processes(tmp_path) as procs:
        first = procs.start("admin", "--no-ingest", "--bind", "127.0.0.1:0", env=env, name="a")
        job = await create_job(api, reason="gateway_rejected", rate=100)
        await wait_job(api, job["id"], lambda j: j["published"] >= 100)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed_at = (await get_job(api, job["id"]))["published"]
        assert killed_at < 400

        procs.start("admin", "--no-ingest", "--bind", "127.0.0.1:0", env=env, name="b")
        done = await wait_job(api, job["id"], lambda j: j["state"] == "completed", timeout=180)
    assert (done["published"], done["succeeded"], done["failed"], done["skipped"]) == (
        400,
        400,
        0,
        0,
    )
    attempts = await replayed_attempts(api, [b["payment_id"] for b in bodies])
    assert set(attempts) == {b["payment_id"] for b in bodies}
    assert set(attempts.values()) == {1}, {p: n for p, n in attempts.items() if n != 1}
    assert all(gateway.state.charge_count(b["payment_id"]) == 1 for b in bodies)


async def test_discarded_and_replayed_entries_are_purged_after_retention_parked_never(
    start_admin: StartAdmin, connection: AbstractRobustConnection, caplog: pytest.LogCaptureFixture
) -> None:
    """Stats announce what the next 24 h purge; with a short retention the admin purges the
    discarded and the replayed entry and the cancelled job, logs the counts, and keeps the
    parked entry and the paused job."""
    admin = await start_admin(dlq_retention_days=1, run_jobs=False)  # jobs wait as created
    await park_many(connection, admin.names, 3)
    await admin.wait_handled(3)
    gone, replayed, kept = [e["id"] for e in await admin.entries()]
    assert (await admin.client.delete(f"/dlq/messages/{gone}", headers=OPERATOR)).status_code == 200
    response = await admin.client.post(f"/dlq/messages/{replayed}/replay", headers=OPERATOR)
    assert response.status_code == 200
    cancelled = (await create_job(admin, ids=[kept]))["id"]
    paused = (await create_job(admin, ids=[kept]))["id"]
    for job_id, action in ((cancelled, "cancel"), (paused, "pause")):
        answer = await admin.client.post(f"/dlq/replay-jobs/{job_id}/{action}", headers=OPERATOR)
        assert answer.status_code == 200, answer.text

    stats = await admin.get("/dlq/stats")
    assert stats["retention"] == {"days": 1.0, "purge_next_24h": 2}

    caplog.set_level(logging.INFO, logger="payproc.admin")
    await start_admin(ingest=False, dlq_retention_days=0.00001, dlq_purge_interval=0.1)
    remaining = await eventually(lambda: admin.entries(), lambda items: len(items) == 1)
    assert [e["id"] for e in remaining] == [kept]
    assert remaining[0]["status"] == "parked"
    purges = [r for r in caplog.records if "discarded or replayed DLQ entries" in r.getMessage()]
    assert sum(r.__dict__["purged"] for r in purges) == 2
    assert (await admin.get("/dlq/stats"))["retention"]["purge_next_24h"] == 0
    await eventually(
        lambda: admin.client.get(f"/dlq/replay-jobs/{cancelled}", headers=OPERATOR),
        lambda answer: answer.status_code == 404,
    )
    assert (await get_job(admin, paused))["state"] == "paused"
    jobs_purged = [r for r in caplog.records if "finished replay jobs" in r.getMessage()]
    assert sum(r.__dict__["purged_jobs"] for r in jobs_purged) == 1
