"""Outcome truth in the admin service: reconciliation of ``unknown`` payments and replay
safety, with the real broker, database, worker, admin runtime and fake gateway."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import orjson
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from processor.adapters.http_gateway import HttpGateway
from processor.producer import payment_message, publish_bodies
from retry.policy import Charged
from schemas.payment import PaymentRequest
from tests.dlq_admin.conftest import OPERATOR, Admin, StartAdmin
from tests.dlq_admin.helpers import eventually, request_body
from tests.dlq_admin.jobs_support import wait_job
from tests.support.collect import Collector

LOST_ANSWER = {"charge_then_timeout_rate": 1.0, "hang_seconds": 10.0}
NEVER_CHARGED = {"timeout_rate": 1.0, "hang_seconds": 10.0}
FAST_RECONCILE = {"reconcile_interval": 0.2, "reconcile_max_delay": 0.5}


def keys(events: Collector, payment_id: str) -> list[str]:
    return [e["routing_key"] for e in events.events_for(payment_id)]


def all_have(events: Collector, payment_ids: list[str], key: str) -> Any:
    return lambda _ms: all(key in keys(events, pid) for pid in payment_ids)


async def submit(connection: AbstractRobustConnection, admin: Admin, count: int) -> list[str]:
    bodies = [request_body() for _ in range(count)]
    await publish_bodies(connection, admin.names, [payment_message(b) for b in bodies])
    return [b["payment_id"] for b in bodies]


async def entry_of(admin: Admin, payment_id: str) -> dict[str, Any]:
    [item] = await admin.entries(payment_id=payment_id)
    return item


async def published(admin: Admin) -> int:
    assert admin.runtime.publisher is not None
    return admin.runtime.publisher.published


async def test_unknown_payments_are_refused_replay_then_settled_once_lookups_work(
    start_admin: StartAdmin, start_worker, gateway, events: Collector, connection
) -> None:
    """Lookups failing: unknown, counted in stats, replay refused (409, nothing published, no
    gateway call). Lookups back: the reconciler settles every one to succeeded (reconciled),
    their entries resolved, none announced failed; a caller waiting on reply_to gets the
    settled result."""
    gateway.state.update_config({**LOST_ANSWER, "lookup_failure_rate": 1.0})
    admin = await start_admin(gateway_url=gateway.url, **FAST_RECONCILE)
    await start_worker(gateway_url=gateway.url, gateway_timeout=0.5, max_attempts=1)
    channel = await connection.channel()
    reply_queue = await channel.declare_queue(exclusive=True)
    replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def on_reply(message: AbstractIncomingMessage) -> None:
        await replies.put({"correlation_id": message.correlation_id, **orjson.loads(message.body)})

    await reply_queue.consume(on_reply, no_ack=True)
    waiting = request_body()
    await publish_bodies(
        connection,
        admin.names,
        [payment_message(waiting, reply_to=reply_queue.name, correlation_id="corr-9")],
    )
    ids = [waiting["payment_id"], *await submit(connection, admin, 2)]
    first = await asyncio.wait_for(replies.get(), 60)
    assert (first["status"], first["correlation_id"]) == ("unknown", "corr-9")
    await events.wait_for(all_have(events, ids, "payment.unknown"))
    await admin.wait_handled(len(ids))

    # At least: on PostgreSQL the test run shares one payments table.
    stats = await admin.get("/dlq/stats")
    assert stats["unknown_payments"] >= len(ids)
    assert stats["oldest_unknown_age_seconds"] >= 0
    metrics = (await admin.client.get("/metrics", headers=OPERATOR)).text
    [gauge] = [m for m in metrics.splitlines() if m.startswith("payproc_payments_unknown ")]
    assert float(gauge.split()[1]) >= len(ids)

    entry = await entry_of(admin, ids[0])
    assert entry["reason"] == "outcome_unknown"
    requests_before, published_before = gateway.state.requests, await published(admin)
    refused = await admin.client.post(f"/dlq/messages/{entry['id']}/replay", headers=OPERATOR)
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "payment_unknown"
    dry = await admin.client.post(
        "/dlq/replay", json={"ids": [entry["id"]], "dry_run": True}, headers=OPERATOR
    )
    assert dry.status_code == 200, dry.text
    assert (dry.json()["would_replay"], dry.json()["skipped"]) == (
        0,
        [{"id": entry["id"], "why": "payment_unknown"}],
    )
    bulk = await admin.client.post(
        "/dlq/replay", json={"reason": "outcome_unknown"}, headers=OPERATOR
    )
    assert bulk.status_code in (200, 202), bulk.text
    assert await published(admin) == published_before
    assert gateway.state.requests == requests_before

    gateway.state.update_config({"lookup_failure_rate": 0.0})
    await events.wait_for(all_have(events, ids, "payment.succeeded"), timeout=60)
    for pid in ids:
        assert "payment.dead_lettered" not in keys(events, pid)
        [settled] = [e for e in events.events_for(pid) if e["routing_key"] == "payment.succeeded"]
        assert settled["reconciled"] is True
        assert settled["gateway_charge_id"] == gateway.state.charge_ids[pid][0]
        assert (await admin.get(f"/payments/{pid}"))["status"] == "succeeded"
        assert gateway.state.charge_count(pid) == 1
    resolved = await eventually(
        lambda: admin.entries(status="resolved"), lambda items: len(items) == len(ids)
    )
    assert {e["payment_id"] for e in resolved} == set(ids)
    await eventually(lambda: admin.get("/dlq/stats"), lambda st: st["unknown_payments"] == 0)
    settled_reply = await asyncio.wait_for(replies.get(), 60)
    assert settled_reply["correlation_id"] == "corr-9"
    assert (settled_reply["status"], settled_reply["reconciled"]) == ("succeeded", True)
    await channel.close()


async def test_never_charged_timeouts_are_replayed_to_success_with_one_charge_each(
    admin: Admin, start_worker, gateway, events: Collector, connection
) -> None:
    gateway.state.update_config(NEVER_CHARGED)
    await start_worker(gateway_url=gateway.url, gateway_timeout=0.5, max_attempts=1)
    ids = await submit(connection, admin, 3)
    await events.wait_for(all_have(events, ids, "payment.dead_lettered"))
    await admin.wait_handled(len(ids))
    gateway.state.update_config({"timeout_rate": 0.0})
    for pid in ids:
        entry = await entry_of(admin, pid)
        assert entry["reason"] == "retries_exhausted"
        answer = await admin.client.post(f"/dlq/messages/{entry['id']}/replay", headers=OPERATOR)
        assert answer.status_code == 200, answer.text
    await events.wait_for(all_have(events, ids, "payment.succeeded"))
    assert all(gateway.state.charge_count(pid) == 1 for pid in ids)


async def test_replay_past_the_idempotency_window_looks_the_charge_up_first(
    start_admin: StartAdmin, start_worker, gateway, events: Collector, connection
) -> None:
    """Past the TTL: no charge -> replayed; cannot say -> 409, nothing published; charged ->
    settled as succeeded (entry resolved, reconciled event) instead of published."""
    gateway.state.update_config({"failure_rate": 1.0})
    admin = await start_admin(gateway_url=gateway.url, gateway_idempotency_ttl=0.01)
    await start_worker(gateway_url=gateway.url, max_attempts=1)
    uncharged, unreachable, charged = await submit(connection, admin, 3)
    ids = [uncharged, unreachable, charged]
    await events.wait_for(all_have(events, ids, "payment.dead_lettered"))
    await admin.wait_handled(3)
    gateway.state.update_config({"failure_rate": 0.0})
    # Someone charged the third payment with its key after it was parked.
    body = (await admin.get(f"/dlq/messages/{(await entry_of(admin, charged))['id']}"))["body"]
    client = HttpGateway(gateway.url, 2.0)
    try:
        answer = await client.charge(PaymentRequest.model_validate(body))
    finally:
        await client.aclose()
    assert isinstance(answer, Charged)

    entry = await entry_of(admin, uncharged)
    ok = await admin.client.post(f"/dlq/messages/{entry['id']}/replay", headers=OPERATOR)
    assert ok.status_code == 200, ok.text
    await events.wait_for(lambda _ms: "payment.succeeded" in keys(events, uncharged))

    gateway.state.update_config({"lookup_failure_rate": 1.0})
    before = await published(admin)
    entry = await entry_of(admin, unreachable)
    refused = await admin.client.post(f"/dlq/messages/{entry['id']}/replay", headers=OPERATOR)
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "lookup_unavailable"
    dry = await admin.client.post(
        "/dlq/replay", json={"ids": [entry["id"]], "dry_run": True}, headers=OPERATOR
    )
    assert dry.status_code == 200, dry.text
    assert dry.json()["skipped"] == [{"id": entry["id"], "why": "lookup_unavailable"}]
    bulk = await admin.client.post("/dlq/replay", json={"ids": [entry["id"]]}, headers=OPERATOR)
    assert bulk.status_code == 202, bulk.text
    job = await wait_job(admin, bulk.json()["id"], lambda j: j["state"] == "completed")
    assert (job["published"], job["skipped_by"]) == (0, {"lookup_unavailable": 1})
    assert await published(admin) == before
    assert (await entry_of(admin, unreachable))["status"] == "parked"

    gateway.state.update_config({"lookup_failure_rate": 0.0})
    entry = await entry_of(admin, charged)
    settled = await admin.client.post(f"/dlq/messages/{entry['id']}/replay", headers=OPERATOR)
    assert settled.status_code == 409, settled.text
    assert settled.json()["code"] == "payment_charged"
    assert (await entry_of(admin, charged))["status"] == "resolved"
    payment = await admin.get(f"/payments/{charged}")
    assert (payment["status"], payment["gateway_charge_id"]) == ("succeeded", answer.charge_id)
    await events.wait_for(lambda _ms: "payment.succeeded" in keys(events, charged))
    assert gateway.state.charge_count(charged) == 1


async def test_payproc_reconcile_settles_unknown_payments_from_the_command_line(
    start_worker, gateway, events: Collector, connection, topology, settings_factory
) -> None:
    """`payproc reconcile` exits 1 while a payment stays unknown, 0 once it is settled."""
    gateway.state.update_config({**LOST_ANSWER, "lookup_failure_rate": 1.0})
    await start_worker(gateway_url=gateway.url, gateway_timeout=0.5, max_attempts=1)
    body = request_body()
    await publish_bodies(connection, topology, [payment_message(body)])
    await events.wait_for(lambda _ms: "payment.unknown" in keys(events, body["payment_id"]))
    settings = settings_factory(gateway_url=gateway.url)
    env = {
        **os.environ,
        "PAYPROC_AMQP_URL": settings.amqp_url,
        "PAYPROC_DATABASE_URL": settings.database_url,
        "PAYPROC_NAMESPACE": settings.namespace,
        "PAYPROC_GATEWAY_URL": gateway.url,
    }

    async def reconcile() -> tuple[int, dict[str, Any]]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "processor.cli", "reconcile",
            env=env, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await process.communicate()
        return process.returncode or 0, orjson.loads(out)

    code, report = await reconcile()
    assert code == 1
    assert body["payment_id"] in report["still_unknown"]
    gateway.state.update_config({"lookup_failure_rate": 0.0})
    code, report = await reconcile()
    assert body["payment_id"] in report["charged"]
    await events.wait_for(lambda _ms: "payment.succeeded" in keys(events, body["payment_id"]))
