"""Replay jobs against the real broker and database, no worker: what a job publishes, in
which order, and how operators control it."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from aio_pika.abc import AbstractRobustConnection

from tests.dlq_admin.conftest import OPERATOR, VIEWER, Admin, StartAdmin
from tests.dlq_admin.helpers import eventually, queue_depth
from tests.dlq_admin.jobs_support import (
    control,
    create_job,
    get_job,
    park_for_merchants,
    published_requests,
    wait_job,
)


async def test_a_job_replays_its_frozen_selection_and_never_entries_parked_later(
    admin: Admin, connection: AbstractRobustConnection
) -> None:
    """The dry run and the job freeze the same entries; entries parked after the job was
    created stay parked; the job publishes exactly its frozen entries, each once."""
    first = await park_for_merchants(connection, admin.names, {"m_a": 6, "m_b": 4})
    await admin.wait_handled(10)

    dry = await create_job(admin, 200, reason="gateway_rejected", dry_run=True)
    assert dry["total"] == 10
    assert dry["by_merchant"] == {"m_a": 6, "m_b": 4}
    assert await queue_depth(connection, admin.names.requests) == 0

    job = await create_job(admin, reason="gateway_rejected", rate=20)
    assert job["total"] == 10
    later = await park_for_merchants(connection, admin.names, {"m_a": 3})
    await admin.wait_handled(13)

    await wait_job(admin, job["id"], lambda j: j["published"] == 10)
    bodies = await published_requests(connection, admin.names, 10)
    assert sorted(b["payment_id"] for b in bodies) == sorted(b["payment_id"] for b in first)
    assert dry["ids"] == [
        e["id"] for b in bodies for e in await admin.entries(payment_id=b["payment_id"])
    ]
    parked = {e["payment_id"] for e in await admin.entries(status="parked")}
    assert parked == {b["payment_id"] for b in later}
    assert await queue_depth(connection, admin.names.requests) == 0


async def test_one_merchants_backlog_does_not_delay_the_others(
    admin: Admin, connection: AbstractRobustConnection
) -> None:
    """One merchant with 1,000 parked entries (the oldest) and nine with 10 each: all of the
    nine's entries are published within the first 10% of the job."""
    counts = {"m_big": 1000, **{f"m_{i}": 10 for i in range(9)}}
    await park_for_merchants(connection, admin.names, counts)
    await admin.wait_handled(1090, timeout=120)

    job = await create_job(admin, reason="gateway_rejected", rate=5000)
    assert job["total"] == 1090
    bodies = await published_requests(connection, admin.names, 1090)
    small = [i for i, b in enumerate(bodies) if b["merchant_id"] != "m_big"]
    assert len(small) == 90
    assert max(small) < 109, max(small)
    assert Counter(b["merchant_id"] for b in bodies) == counts


async def test_pause_resume_and_cancel_by_operators_only_every_action_audited(
    admin: Admin, connection: AbstractRobustConnection
) -> None:
    """Pause stops publishing; resume continues; cancel keeps what was published and leaves
    the rest parked. A viewer gets 403 on every control; every action is in the audit log."""
    await park_for_merchants(connection, admin.names, {"m_a": 40})
    await admin.wait_handled(40)
    job = await create_job(admin, reason="gateway_rejected", rate=5)
    job_id = job["id"]
    runner = admin.runtime.runner
    assert runner is not None

    async def running() -> bool:
        return runner.is_running(job_id)

    for action in ("pause", "resume", "cancel"):
        response = await admin.client.post(f"/dlq/replay-jobs/{job_id}/{action}", headers=VIEWER)
        assert response.status_code == 403, response.text
    response = await admin.client.post(
        "/dlq/replay-jobs", json={"reason": "gateway_rejected"}, headers=VIEWER
    )
    assert response.status_code == 403

    await wait_job(admin, job_id, lambda j: j["published"] >= 5)
    paused = await control(admin, job_id, "pause", reason="gateway maintenance")
    assert paused["state"] == "paused"
    assert paused["paused_reason"] == "paused by alice: gateway maintenance"
    await eventually(running, lambda now: not now)
    frozen = await get_job(admin, job_id)
    assert 5 <= frozen["published"] < 40
    assert await queue_depth(connection, admin.names.requests) == frozen["published"]
    assert frozen["eta_seconds"] is None

    again = await admin.client.post(f"/dlq/replay-jobs/{job_id}/pause", headers=OPERATOR)
    assert again.status_code == 409
    assert again.json()["code"] == "job_paused"

    await control(admin, job_id, "resume")
    await wait_job(admin, job_id, lambda j: j["published"] >= frozen["published"] + 3)
    cancelled = await control(admin, job_id, "cancel")
    assert cancelled["state"] == "cancelled"
    assert cancelled["finished_at"] is not None
    await eventually(running, lambda now: not now)
    final = await get_job(admin, job_id)
    assert final["published"] < 40
    assert await queue_depth(connection, admin.names.requests) == final["published"]
    parked = await admin.entries(status="parked", limit=100)
    assert len(parked) == 40 - final["published"]

    missing = await admin.client.post("/dlq/replay-jobs/nope/resume", headers=OPERATOR)
    assert missing.status_code == 404
    done = await admin.client.post(f"/dlq/replay-jobs/{job_id}/resume", headers=OPERATOR)
    assert done.status_code == 409

    audit = (await admin.get("/audit", limit=50))["items"]
    rows = [
        (a["actor"], a["action"], a["outcome"], a["status_code"])
        for a in audit
        if a["action"].startswith("dlq.replay_job")
    ]
    assert rows == [
        ("alice", "dlq.replay_job.resume", "job_cancelled", 409),
        ("alice", "dlq.replay_job.resume", "not_found", 404),
        ("alice", "dlq.replay_job.cancel", "ok", 200),
        ("alice", "dlq.replay_job.resume", "ok", 200),
        ("alice", "dlq.replay_job.pause", "job_paused", 409),
        ("alice", "dlq.replay_job.pause", "ok", 200),
        ("bob", "dlq.replay_job.create", "forbidden", 403),
        ("bob", "dlq.replay_job.cancel", "forbidden", 403),
        ("bob", "dlq.replay_job.resume", "forbidden", 403),
        ("bob", "dlq.replay_job.pause", "forbidden", 403),
        ("alice", "dlq.replay_job.create", "ok", 200),
    ]
    assert all(
        a["target"] == f"job:{job_id}"
        for a in audit[:10]
        if a["actor"] == "alice" and a["outcome"] != "not_found"
    )


async def test_two_admins_on_one_database_one_runs_the_job(
    start_admin: StartAdmin, connection: AbstractRobustConnection
) -> None:
    """Two admin processes share the database: exactly one takes the job's lease and
    publishes (after a ramp); every entry is published once."""
    first = await start_admin()
    second = await start_admin(ingest=False)
    await park_for_merchants(connection, first.names, {"m_a": 30, "m_b": 30})
    await first.wait_handled(60)

    job = await create_job(second, reason="gateway_rejected", rate=100, ramp=[1, 5])
    assert job["ramp"] == [1, 5]
    await wait_job(first, job["id"], lambda j: j["published"] == 60)
    runners = [a.runtime.runner for a in (first, second)]
    assert sum(1 for r in runners if r is not None and job["id"] in r.ran) == 1
    bodies = await published_requests(connection, first.names, 60)
    assert len({b["payment_id"] for b in bodies}) == 60
    assert await queue_depth(connection, first.names.requests) == 0


async def test_bulk_replay_creates_a_job(
    admin: Admin, connection: AbstractRobustConnection
) -> None:
    """``POST /dlq/replay`` answers 202 with a job over the selection; listing shows it."""
    await park_for_merchants(connection, admin.names, {"m_a": 3})
    await admin.wait_handled(3)
    response = await admin.client.post(
        "/dlq/replay", json={"reason": "gateway_rejected"}, headers=OPERATOR
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["total"] == 3
    await wait_job(admin, job["id"], lambda j: j["published"] == 3)
    page = (await admin.get("/dlq/replay-jobs"))["items"]
    assert [j["id"] for j in page] == [job["id"]]
    assert await queue_depth(connection, admin.names.requests) == 3


async def test_bulk_replay_by_merchant_and_time_window_creates_a_job_of_exactly_those(
    admin: Admin, connection: AbstractRobustConnection
) -> None:
    """``POST /dlq/replay`` takes a job's selection: a merchant and a time window (plus the
    default ``parked`` status) select exactly the matching entries, in the dry run (200) and
    in the job it creates (202); the other merchant's entries in the window and the
    merchant's entries outside it stay parked."""
    await park_for_merchants(connection, admin.names, {"m_a": 3, "m_b": 3})
    await admin.wait_handled(6)
    await park_for_merchants(connection, admin.names, {"m_b": 3, "m_a": 3})
    await admin.wait_handled(12)
    entries = await admin.entries(limit=100)
    times = {e["id"]: datetime.fromisoformat(e["dead_lettered_at"]) for e in entries}
    of_a = sorted((e for e in entries if e["merchant_id"] == "m_a"), key=lambda e: times[e["id"]])
    since, until = times[of_a[1]["id"]], times[of_a[5]["id"]]
    in_window = {i for i, t in times.items() if since <= t < until}
    discarded = of_a[2]["id"]
    gone = await admin.client.delete(f"/dlq/messages/{discarded}", headers=OPERATOR)
    assert gone.status_code == 200, gone.text
    expected = {e["id"] for e in of_a[1:5]} - {discarded}
    assert len(expected) == 3
    assert in_window - {e["id"] for e in of_a}, "the window holds m_b entries too"
    selection = {"merchant_id": "m_a", "since": since.isoformat(), "until": until.isoformat()}

    dry = await admin.client.post(
        "/dlq/replay", json={**selection, "dry_run": True}, headers=OPERATOR
    )
    assert dry.status_code == 200, dry.text
    assert (dry.json()["would_replay"], set(dry.json()["ids"])) == (3, expected)
    assert await queue_depth(connection, admin.names.requests) == 0

    response = await admin.client.post("/dlq/replay", json=selection, headers=OPERATOR)
    assert response.status_code == 202, response.text
    assert response.json()["total"] == 3
    job = await wait_job(admin, response.json()["id"], lambda j: j["waiting"] == 0)
    assert (job["published"], job["skipped"]) == (3, 0)
    assert {e["id"] for e in await admin.entries(status="replayed")} == expected
    assert len(await admin.entries(status="parked")) == 12 - 3 - 1
    assert await queue_depth(connection, admin.names.requests) == 3


async def test_job_requests_that_no_entry_can_match_are_refused_or_match_nothing(
    admin: Admin,
) -> None:
    """Ramp steps out of range and text no database holds (a lone surrogate, a NUL) are a
    422; among ids such text matches nothing (an empty job, completed at once)."""
    json_header = {**OPERATOR, "Content-Type": "application/json"}
    for body in (
        b'{"reason": "poison", "ramp": [0]}',
        b'{"reason": "poison", "ramp": [100000000000000000000]}',
        b'{"group": "\\udb24"}',
        b'{"merchant_id": "m\\u0000"}',
        b'{"ids": ["\\udaa7", "x\\u0000"]}',
    ):
        response = await admin.client.post("/dlq/replay-jobs", content=body, headers=json_header)
        assert response.status_code == 422, (body, response.text)
    response = await admin.client.post(
        "/dlq/replay-jobs", content=b'{"ids": ["\\udaa7", "x"]}', headers=json_header
    )
    assert response.status_code == 201, response.text
    assert (response.json()["total"], response.json()["state"]) == (0, "completed")
