"""Bulk replay and discard: by ids, reason or group, with limit, dry_run and a rate limit.

``POST /dlq/replay`` creates a replay job (202); these tests wait for the job to have
published or skipped every entry and check what a bulk replay always promised: each entry
published once, final payments never replayed, refused publishes left parked."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aio_pika.abc import AbstractRobustConnection
from sqlalchemy import select

from dlq_admin.jobs import execution
from dlq_admin.jobs.execution import Pacing
from processor.producer import payment_message, publish_bodies
from schemas.dlq_tables import DlqEntryRow
from tests.dlq_admin.conftest import OPERATOR, Admin, StartAdmin
from tests.dlq_admin.helpers import (
    eventually,
    park,
    park_many,
    queue_depth,
    record_succeeded,
    request_body,
)
from tests.dlq_admin.jobs_support import Job, control, get_job, published_requests, wait_job
from tests.support.collect import Collector

REJECTED = "gateway_rejected|amount_invalid|422|-"
EXHAUSTED = "retries_exhausted|http_503|503|-"


async def _scene(admin: Admin) -> dict[str, Any]:
    """3 rejected, 2 exhausted, 1 rejected whose payment succeeded, 1 discarded."""
    rejected = [await park(admin.connection, admin.names) for _ in range(3)]
    exhausted = [
        await park(
            admin.connection,
            admin.names,
            reason="retries_exhausted",
            error_code="http_503",
            http_status=503,
        )
        for _ in range(2)
    ]
    done = await park(admin.connection, admin.names)
    gone = await park(admin.connection, admin.names)
    await admin.wait_handled(7)
    await record_succeeded(admin.engine, [done["payment_id"]])
    by_pid = {i["payment_id"]: i["id"] for i in await admin.entries()}
    response = await admin.client.delete(
        f"/dlq/messages/{by_pid[gone['payment_id']]}", headers=OPERATOR
    )
    assert response.status_code == 200
    return {
        "rejected": [by_pid[b["payment_id"]] for b in rejected],
        "exhausted": [by_pid[b["payment_id"]] for b in exhausted],
        "done": by_pid[done["payment_id"]],
        "gone": by_pid[gone["payment_id"]],
    }


async def _replay_job(
    admin: Admin, accept: Callable[[Job], bool] | None = None, **selection: Any
) -> Job:
    """``POST /dlq/replay`` (a 202 with the job), then wait until the job has published or
    skipped every entry (or until ``accept`` holds)."""
    response = await admin.client.post("/dlq/replay", json=selection, headers=OPERATOR)
    assert response.status_code == 202, response.text
    job: Job = response.json()
    return await wait_job(admin, job["id"], accept or (lambda j: j["waiting"] == 0))


async def _bulk(admin: Admin, path: str = "/dlq/replay", **selection: Any) -> dict[str, Any]:
    response = await admin.client.post(path, json=selection, headers=OPERATOR)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_bulk_replay_by_reason_with_dry_run_and_limit(
    admin: Admin, connection: AbstractRobustConnection
) -> None:
    """A dry run lists what would go and publishes nothing; limit caps a real run, oldest first."""
    scene = await _scene(admin)

    dry = await _bulk(admin, reason="gateway_rejected", dry_run=True)
    assert dry["dry_run"] is True
    assert dry["replayed"] == 0
    assert dry["would_replay"] == 3
    assert dry["ids"] == scene["rejected"]
    assert dry["skipped"] == [{"id": scene["done"], "why": "payment_succeeded"}]
    assert await queue_depth(connection, admin.names.requests) == 0

    run = await _replay_job(admin, reason="gateway_rejected", limit=2)
    assert (run["total"], run["published"], run["skipped"]) == (2, 2, 0)
    assert await queue_depth(connection, admin.names.requests) == 2
    parked = {i["id"] for i in await admin.entries(status="parked")}
    assert scene["rejected"][2] in parked
    assert not set(scene["rejected"][:2]) & parked


async def test_bulk_replay_by_ids_reports_why_each_one_was_skipped(
    admin: Admin, connection: AbstractRobustConnection
) -> None:
    """Unknown, discarded, already replayed and succeeded entries are skipped with a reason."""
    scene = await _scene(admin)
    first = scene["rejected"][0]
    await admin.client.post(f"/dlq/messages/{first}/replay", headers=OPERATOR)
    unknown = str(uuid.uuid4())

    dry = await _bulk(
        admin,
        ids=[first, scene["rejected"][1], scene["gone"], unknown, scene["done"]],
        dry_run=True,
    )
    assert {(s["id"], s["why"]) for s in dry["skipped"]} == {
        (first, "status_replayed"),
        (scene["gone"], "status_discarded"),
        (unknown, "not_found"),
        (scene["done"], "payment_succeeded"),
    }
    job = await _replay_job(
        admin, ids=[first, scene["rejected"][1], scene["gone"], unknown, scene["done"]]
    )
    assert (job["total"], job["published"], job["skipped"]) == (4, 1, 3)  # unknown: not frozen
    assert job["skipped_by"] == {
        "replayed_elsewhere": 1,
        "entry_discarded": 1,
        "payment_succeeded": 1,
    }
    assert await queue_depth(connection, admin.names.requests) == 2
    replayed = {e["id"] for e in await admin.entries(status="replayed")}
    assert replayed == {first, scene["rejected"][1]}


async def test_bulk_replay_and_discard_by_group(
    admin: Admin, connection: AbstractRobustConnection
) -> None:
    """A fingerprint from /dlq/groups targets exactly that group for replay or discard."""
    scene = await _scene(admin)
    groups = {g["fingerprint"]: g["count"] for g in (await admin.get("/dlq/groups"))["items"]}
    assert groups == {REJECTED: 4, EXHAUSTED: 2}

    job = await _replay_job(admin, group=EXHAUSTED)
    assert (job["total"], job["published"]) == (2, 2)
    assert await queue_depth(connection, admin.names.requests) == 2
    replayed = {e["id"] for e in await admin.entries(status="replayed")}
    assert replayed == set(scene["exhausted"])

    dry = await _bulk(admin, "/dlq/discard", group=REJECTED, dry_run=True)
    assert dry["dry_run"] is True
    assert sorted(dry["ids"]) == sorted([*scene["rejected"], scene["done"]])
    assert len(await admin.entries(status="parked")) == 4
    done = await _bulk(admin, "/dlq/discard", group=REJECTED, limit=3)
    assert done["discarded"] == 3
    assert len(await admin.entries(status="discarded")) == 4
    assert [g["count"] for g in (await admin.get("/dlq/groups"))["items"]] == [1]


async def test_bulk_selection_must_select_something_valid(admin: Admin) -> None:
    """No criterion (a status alone narrows nothing), an empty id list, a bad limit, an
    unknown reason, a window that ends before it starts or an unknown field are a 422."""
    for selection in (
        {},
        {"status": "parked"},
        {"ids": []},
        {"reason": "poison", "limit": 0},
        {"reason": "poison", "limit": 1_000_001},
        {"reason": "sad"},
        {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        {"group": "x", "surprise": True},
    ):
        response = await admin.client.post("/dlq/replay", json=selection, headers=OPERATOR)
        assert response.status_code == 422, (selection, response.text)
        assert response.json()["detail"]


async def test_bulk_replay_is_rate_limited(
    start_admin: StartAdmin, connection: AbstractRobustConnection
) -> None:
    """At 50 messages/s (the admin's default job rate; burst 12), replaying 20 parked
    entries takes at least 0.15 s."""
    admin = await start_admin(admin_replay_rate=50)
    for _ in range(20):
        await park(admin.connection, admin.names)
    await admin.wait_handled(20)

    started = time.perf_counter()
    job = await _replay_job(admin, reason="gateway_rejected", limit=1000)
    elapsed = time.perf_counter() - started
    assert job["published"] == 20
    assert job["rate"] == 50
    assert elapsed >= 0.15, elapsed
    assert await queue_depth(connection, admin.names.requests) == 20


async def test_fix_the_gateway_then_replay_the_group_and_every_payment_succeeds(
    admin: Admin, start_worker, gateway, events: Collector, connection: AbstractRobustConnection
) -> None:
    """Payments parked by a gateway outage all succeed after a bulk replay of their group."""
    gateway.state.update_config({"failure_rate": 1.0})
    await start_worker(gateway_url=gateway.url)
    bodies = [request_body() for _ in range(3)]
    await publish_bodies(connection, admin.names, [payment_message(b) for b in bodies])
    await admin.wait_handled(3, timeout=30)
    [group] = (await admin.get("/dlq/groups"))["items"]
    assert group["reason"] == "retries_exhausted"
    assert group["count"] == 3

    gateway.state.update_config({"failure_rate": 0.0})
    job = await _replay_job(admin, lambda j: j["state"] == "completed", group=group["fingerprint"])
    assert (job["published"], job["succeeded"], job["failed"]) == (3, 3, 0)

    pids = {b["payment_id"] for b in bodies}

    def all_succeeded(_messages: object) -> bool:
        return all(
            "payment.succeeded" in [e["routing_key"] for e in events.events_for(p)] for p in pids
        )

    await events.wait_for(all_succeeded)
    assert all(gateway.state.charge_count(p) == 1 for p in pids)
    stats = await admin.get("/dlq/stats")
    assert stats["parked"] == 0
    assert stats["by_status"]["replayed"] == 3


# ---- a job's batches: one claim, pipelined confirms, one settle per batch -----------------


def _job_batches_of(monkeypatch: pytest.MonkeyPatch, size: int, rate: float) -> None:
    """Make a replay job at ``rate`` publish in batches of ``size``: ``MAX_CHUNK`` is the most
    entries one round of a job (``execution.JobExecution``) claims, publishes and settles."""
    monkeypatch.setattr(execution, "MAX_CHUNK", size)
    assert Pacing(rate, None).chunk == size


async def _entries_by_payment(admin: Admin) -> dict[str, tuple[str, str]]:
    """``payment_id -> (entry id, status)`` for every entry of the namespace, from the table."""
    engine = admin.runtime.engine
    assert engine is not None
    table = DlqEntryRow.__table__  # type: ignore[attr-defined]
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(table.c.payment_id, table.c.id, table.c.status).where(
                table.c.namespace == admin.names.namespace
            )
        )
        return {str(r.payment_id): (str(r.id), str(r.status)) for r in rows}


async def _request_queue_holding_at_most(
    connection: AbstractRobustConnection, admin: Admin, limit: int
) -> None:
    """Swap ``N.requests`` for a classic queue that holds ``limit`` messages and makes the
    broker nack (``basic.nack``) every publish beyond them: a real broker refusing part of
    a job's batch."""
    channel = await connection.channel()
    try:
        await channel.queue_delete(admin.names.requests)
        queue = await channel.declare_queue(
            admin.names.requests,
            durable=True,
            arguments={"x-max-length": limit, "x-overflow": "reject-publish"},
        )
        await queue.bind(admin.names.exchange, "payment.request")
    finally:
        await channel.close()


async def test_a_broker_refusing_part_of_a_batch_leaves_exactly_the_refused_entries_parked(
    start_admin: StartAdmin, connection: AbstractRobustConnection
) -> None:
    """300 entries in one batch; the broker confirms the first 120 and nacks the rest:
    exactly the 120 confirmed are replayed, the 180 refused stay parked (the job waits and
    tries them again); once the broker takes them, they go out, each once."""
    admin = await start_admin(admin_replay_rate=100_000, admin_job_poll=0.2)
    assert Pacing(100_000, None).chunk >= 300  # one batch
    bodies = await park_many(admin.connection, admin.names, 300)
    await admin.wait_handled(300, timeout=60)
    await _request_queue_holding_at_most(connection, admin, 120)

    job = await _replay_job(
        admin, lambda j: j["published"] >= 120, reason="gateway_rejected", limit=1000
    )
    assert job["published"] == 120
    statuses = await eventually(
        lambda: _entries_by_payment(admin),
        lambda e: [e[b["payment_id"]][1] for b in bodies] == ["replayed"] * 120 + ["parked"] * 180,
    )
    assert len(statuses) == 300
    assert (await get_job(admin, job["id"]))["published"] == 120
    assert await queue_depth(connection, admin.names.requests) == 120

    await _request_queue_holding_at_most(connection, admin, 10_000)
    done = await wait_job(admin, job["id"], lambda j: j["waiting"] == 0)
    assert (done["published"], done["skipped"]) == (300, 0)
    assert await queue_depth(connection, admin.names.requests) == 180  # the queue was replaced
    entries = await _entries_by_payment(admin)
    assert {status for _, status in entries.values()} == {"replayed"}


async def test_batch_boundaries_keep_the_limit_the_order_and_the_skips(
    admin: Admin, connection: AbstractRobustConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches of 4: a final payment in the first batch and a discarded entry in between; the
    oldest eligible entries go, in order across the batches, and nothing past the limit."""
    _job_batches_of(monkeypatch, 4, admin.service.jobs.default_rate)
    bodies = await park_many(admin.connection, admin.names, 11)
    await admin.wait_handled(11)
    entries = await _entries_by_payment(admin)
    ids = [entries[b["payment_id"]][0] for b in bodies]
    await record_succeeded(admin.engine, [bodies[2]["payment_id"]])
    discarded = await admin.client.delete(f"/dlq/messages/{ids[5]}", headers=OPERATOR)
    assert discarded.status_code == 200
    eligible = [i for n, i in enumerate(ids) if n not in (2, 5)]

    # A job's limit counts the entries it freezes (parked ones, oldest first); the one whose
    # payment is final is frozen too, and skipped. The dry run says so.
    dry = await _bulk(admin, reason="gateway_rejected", limit=8, dry_run=True)
    assert dry["ids"] == eligible[:7]
    assert dry["skipped"] == [{"id": ids[2], "why": "payment_succeeded"}]
    assert await queue_depth(connection, admin.names.requests) == 0

    run = await _replay_job(admin, reason="gateway_rejected", limit=8)
    assert (run["total"], run["published"], run["skipped_by"]) == (
        8,
        7,
        {"payment_succeeded": 1},
    )
    assert await queue_depth(connection, admin.names.requests) == 7
    in_order = [b["payment_id"] for n, b in enumerate(bodies) if n not in (2, 5)]
    published = await published_requests(connection, admin.names, 7)
    assert [m["payment_id"] for m in published] == in_order[:7]
    entries = await _entries_by_payment(admin)
    status_of = {entries[b["payment_id"]][0]: entries[b["payment_id"]][1] for b in bodies}
    replayed = {i for i in ids if status_of[i] == "replayed"}
    assert replayed == set(eligible[:7])
    assert entries[bodies[10]["payment_id"]][1] == "parked"

    rest = await _replay_job(admin, reason="gateway_rejected", limit=8)
    assert (rest["total"], rest["published"], rest["skipped"]) == (3, 2, 1)
    assert await queue_depth(connection, admin.names.requests) == 2  # the 7 were taken off


async def test_ids_filling_whole_batches_with_duplicates_and_unknown_ids(
    admin: Admin, connection: AbstractRobustConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An id list of exactly two batches of entries (one id twice, one unknown): each entry
    goes once."""
    _job_batches_of(monkeypatch, 3, admin.service.jobs.default_rate)
    bodies = await park_many(admin.connection, admin.names, 6)
    await admin.wait_handled(6)
    entries = await _entries_by_payment(admin)
    ids = [entries[b["payment_id"]][0] for b in bodies]
    unknown = str(uuid.uuid4())
    job = await _replay_job(admin, ids=[ids[0], unknown, ids[1], ids[0], *ids[2:]])
    assert (job["total"], job["published"], job["skipped"]) == (6, 6, 0)
    assert await queue_depth(connection, admin.names.requests) == 6
    assert {e["id"] for e in await admin.entries(status="replayed")} == set(ids)


async def test_concurrent_bulk_and_single_replays_publish_each_entry_once(
    start_admin: StartAdmin, connection: AbstractRobustConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two replay jobs of the same 200 entries (batches of 50) and single replays of some of
    them, all at once: every entry is published exactly once."""
    admin = await start_admin(admin_replay_rate=100_000)
    _job_batches_of(monkeypatch, 50, 100_000)
    bodies = await park_many(admin.connection, admin.names, 200)
    await admin.wait_handled(200, timeout=60)
    entries = await _entries_by_payment(admin)
    singles = [entries[b["payment_id"]][0] for b in bodies[::40]]

    async def single(entry_id: str) -> int:
        response = await admin.client.post(f"/dlq/messages/{entry_id}/replay", headers=OPERATOR)
        assert response.status_code in (200, 409), response.text
        return 1 if response.status_code == 200 else 0

    first, second, *alone = await asyncio.gather(
        _replay_job(admin, reason="gateway_rejected", limit=1000),
        _replay_job(admin, reason="gateway_rejected", limit=1000),
        *(single(i) for i in singles),
    )
    assert first["published"] + second["published"] + sum(alone) == 200
    whys = set(first["skipped_by"]) | set(second["skipped_by"])
    assert whys <= {"claimed_elsewhere", "replayed_elsewhere"}
    assert await queue_depth(connection, admin.names.requests) == 200
    entries = await _entries_by_payment(admin)
    assert {status for _, status in entries.values()} == {"replayed"}


async def _replays_refused(admin: Admin) -> float:
    """Replay publishes the broker did not confirm so far (the admin's metrics)."""
    metrics = (await admin.client.get("/metrics", headers=OPERATOR)).text
    sample = 'payproc_dlq_replays_total{outcome="failed"} '
    return sum(float(m.removeprefix(sample)) for m in metrics.splitlines() if m.startswith(sample))


async def test_two_entries_of_one_payment_returned_in_one_batch_both_stay_parked(
    start_admin: StartAdmin, connection: AbstractRobustConnection
) -> None:
    """Two parked entries share a payment_id (so the replays share a message_id) and the
    broker returns both publishes of the job's batch (no queue bound): neither may count as
    confirmed; both stay parked and wait in the job until the queue is back."""
    admin = await start_admin(admin_replay_rate=100_000)
    body = request_body()
    await park(admin.connection, admin.names, body)
    await park(admin.connection, admin.names, body)
    await admin.wait_handled(2)
    ids = [i["id"] for i in await admin.entries()]
    assert len(ids) == 2
    runner = admin.runtime.runner
    assert runner is not None
    channel = await connection.channel()
    queue = await channel.get_queue(admin.names.requests, ensure=False)
    await queue.unbind(admin.names.exchange, "payment.request")
    try:
        created = await admin.client.post("/dlq/replay", json={"ids": ids}, headers=OPERATOR)
        assert created.status_code == 202, created.text
        job_id = created.json()["id"]
        await eventually(lambda: _replays_refused(admin), lambda n: n >= 2)
        await control(admin, job_id, "pause")

        async def running() -> bool:
            return runner.is_running(job_id)

        await eventually(running, lambda r: not r)  # its execution ended with the pause
        job = await get_job(admin, job_id)
        assert (job["published"], job["waiting"], job["skipped"]) == (0, 2, 0)
        assert {i["status"] for i in await admin.entries()} == {"parked"}
        assert await queue_depth(connection, admin.names.requests) == 0
    finally:
        await queue.bind(admin.names.exchange, "payment.request")
        await channel.close()
    await control(admin, job_id, "resume")
    again = await wait_job(admin, job_id, lambda j: j["waiting"] == 0)
    assert again["published"] == 2
    assert await queue_depth(connection, admin.names.requests) == 2
    assert {i["status"] for i in await admin.entries()} == {"replayed"}
