"""Bulk replay and discard: by ids, reason or group, with limit, dry_run and a rate limit."""

from __future__ import annotations

import time
import uuid
from typing import Any

from aio_pika.abc import AbstractRobustConnection

from processor.producer import payment_message, publish_bodies
from schemas.tables import PaymentRow, utcnow
from tests.dlq_admin.conftest import OPERATOR, Admin, StartAdmin
from tests.dlq_admin.helpers import park, queue_depth, request_body
from tests.support.collect import Collector

REJECTED = "gateway_rejected|amount_invalid|422|-"
EXHAUSTED = "retries_exhausted|http_503|503|-"


async def _succeeded(admin: Admin, payment_id: str) -> None:
    """Record a payment as succeeded in the worker's table."""
    engine = admin.runtime.engine
    assert engine is not None
    row = PaymentRow(
        payment_id=payment_id,
        status="succeeded",
        attempts=1,
        amount=1999,
        currency="EUR",
        merchant_id="m_123",
        fingerprint="1999:EUR:m_123",
        gateway_charge_id="ch_done",
        updated_at=utcnow(),
    )
    async with engine.begin() as conn:
        await conn.execute(PaymentRow.__table__.insert().values(**row.model_dump()))  # type: ignore[attr-defined]


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
    await _succeeded(admin, done["payment_id"])
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

    run = await _bulk(admin, reason="gateway_rejected", limit=2)
    assert run["replayed"] == 2
    assert run["ids"] == scene["rejected"][:2]
    assert run["failed"] == []
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

    result = await _bulk(
        admin, ids=[first, scene["rejected"][1], scene["gone"], unknown, scene["done"]]
    )
    assert result["replayed"] == 1
    assert result["ids"] == [scene["rejected"][1]]
    assert {(s["id"], s["why"]) for s in result["skipped"]} == {
        (first, "status_replayed"),
        (scene["gone"], "status_discarded"),
        (unknown, "not_found"),
        (scene["done"], "payment_succeeded"),
    }
    assert await queue_depth(connection, admin.names.requests) == 2


async def test_bulk_replay_and_discard_by_group(
    admin: Admin, connection: AbstractRobustConnection
) -> None:
    """A fingerprint from /dlq/groups targets exactly that group for replay or discard."""
    scene = await _scene(admin)
    groups = {g["fingerprint"]: g["count"] for g in (await admin.get("/dlq/groups"))["items"]}
    assert groups == {REJECTED: 4, EXHAUSTED: 2}

    result = await _bulk(admin, group=EXHAUSTED)
    assert sorted(result["ids"]) == sorted(scene["exhausted"])
    assert await queue_depth(connection, admin.names.requests) == 2

    dry = await _bulk(admin, "/dlq/discard", group=REJECTED, dry_run=True)
    assert dry["dry_run"] is True
    assert sorted(dry["ids"]) == sorted([*scene["rejected"], scene["done"]])
    assert len(await admin.entries(status="parked")) == 4
    done = await _bulk(admin, "/dlq/discard", group=REJECTED, limit=3)
    assert done["discarded"] == 3
    assert len(await admin.entries(status="discarded")) == 4
    assert [g["count"] for g in (await admin.get("/dlq/groups"))["items"]] == [1]


async def test_bulk_selection_must_name_exactly_one_target(admin: Admin) -> None:
    """No selector, two selectors, an empty id list or a bad limit are a 422 with a message."""
    for selection in (
        {},
        {"ids": ["a"], "reason": "poison"},
        {"ids": []},
        {"reason": "poison", "limit": 0},
        {"reason": "poison", "limit": 10_001},
        {"reason": "sad"},
        {"group": "x", "surprise": True},
    ):
        response = await admin.client.post("/dlq/replay", json=selection, headers=OPERATOR)
        assert response.status_code == 422, (selection, response.text)
        assert response.json()["detail"]


async def test_bulk_replay_is_rate_limited(
    start_admin: StartAdmin, connection: AbstractRobustConnection
) -> None:
    """At 50 messages/s (burst 5), replaying 20 parked entries takes at least 0.3 s."""
    admin = await start_admin(admin_replay_rate=50)
    for _ in range(20):
        await park(admin.connection, admin.names)
    await admin.wait_handled(20)

    started = time.perf_counter()
    result = await _bulk(admin, reason="gateway_rejected", limit=1000)
    elapsed = time.perf_counter() - started
    assert result["replayed"] == 20
    assert elapsed >= 0.28, elapsed
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
    result = await _bulk(admin, group=group["fingerprint"])
    assert result["replayed"] == 3

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
