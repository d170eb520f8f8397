"""Outcome truth across real processes: ``payproc fake-gateway``, ``payproc worker`` and
``payproc admin`` on the real broker and database.

The gateway charges and then its answer is lost (or it hangs before charging) past the
worker's timeout. payproc must never announce a charged payment as failed: the worker looks
the charge up on the last attempt, ``unknown`` is parked until the admin's reconciler can
settle it, and the admin refuses replays that could charge twice. What is checked is what a
merchant and an operator see: events on ``N.events``, the payments table, the admin API and
the gateway's own ledger.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection

from processor.config import Settings
from processor.producer import payment_message, publish_bodies
from processor.rpc_client import RpcClient
from retry.names import REQUEST_ROUTING_KEY, Names
from schemas.outcome import PaymentStatus
from tests.dlq_admin.helpers import eventually
from tests.support.collect import Collector
from tests.support.payments import payment, stored
from tests.support.process_stack import AdminProcess, GatewayProcess, ProcessStack
from tests.support.processes import Processes

LOST_ANSWER = {"charge_then_timeout_rate": 1.0, "hang_seconds": 10.0}
"""Every first charge of a key is made, then its answer hangs past the worker's timeout."""
NEVER_CHARGED = {"timeout_rate": 1.0, "hang_seconds": 10.0}
"""Every charge request hangs past the worker's timeout before anything is charged."""
FAST_RECONCILE = {"reconcile_interval": 0.2, "reconcile_max_delay": 0.5}
WORKER = {"gateway_timeout": 1.0, "max_attempts": 1}
FAILED = {"payment.dead_lettered", "payment.declined"}
MARKER = "test.marker"


@pytest.fixture
async def stack(
    topology: Names, settings_factory: Callable[..., Settings], tmp_path: Path
) -> AsyncIterator[ProcessStack]:
    running = ProcessStack(Processes(tmp_path), settings_factory(prefetch=20))
    try:
        yield running
    finally:
        await running.close()
        for log in sorted(tmp_path.glob("*.log")):  # shown by pytest when the test failed
            print(f"---- {log.name}\n{log.read_text(errors='replace')[-4000:]}")


@pytest.fixture
async def requests_seen(
    connection: AbstractRobustConnection, topology: Names
) -> AsyncIterator[Collector]:
    """Every payment request published to ``N`` (the test's and the admin's replays), plus
    the test's own markers (``MARKER``), in the order the broker routed them."""
    channel = await connection.channel()
    collector = Collector()
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    for routing_key in (REQUEST_ROUTING_KEY, MARKER):  # one queue: one order
        await queue.bind(topology.exchange, routing_key)
    await queue.consume(collector.on_message)
    yield collector
    await channel.close()


async def requests_published_since(
    seen: Collector, connection: AbstractRobustConnection, names: Names, since: int
) -> list[str]:
    """Payment ids published as requests after the first ``since`` messages seen.

    A publish confirmed before now is routed before a marker published now, so once the
    marker has arrived, everything published before it has too."""
    marker = uuid.uuid4().hex
    channel = await connection.channel()
    exchange = await channel.get_exchange(names.exchange, ensure=False)
    await exchange.publish(aio_pika.Message(marker.encode()), MARKER)
    await channel.close()
    await seen.wait_for(lambda ms: any(m.body == marker.encode() for m in ms[since:]))
    return [m.json()["payment_id"] for m in seen.messages[since:] if m.routing_key != MARKER]


def keys(events: Collector, payment_id: str) -> list[str]:
    return [e["routing_key"] for e in events.events_for(payment_id)]


def all_have(events: Collector, payment_ids: list[str], key: str) -> Any:
    return lambda _ms: all(key in keys(events, pid) for pid in payment_ids)


async def submit(connection: AbstractRobustConnection, names: Names, count: int) -> list[str]:
    bodies = [payment() for _ in range(count)]
    await publish_bodies(connection, names, [payment_message(b) for b in bodies])
    return [b["payment_id"] for b in bodies]


async def parked_entries(admin: AdminProcess, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The admin's DLQ entry of each payment, once its ingest has indexed them all."""
    items = await eventually(
        lambda: admin.entries(limit=100),
        lambda items: {i["payment_id"] for i in items} >= set(ids),
        timeout=60,
    )
    return {i["payment_id"]: i for i in items if i["payment_id"] in ids}


IDEMPOTENCY_TTL = 0.05


async def past_the_idempotency_window(database_url: str, ids: list[str]) -> None:
    """Return once every payment's last gateway attempt is older than ``IDEMPOTENCY_TTL``.

    Time passing is the condition itself here: on a fast run the replay could otherwise come
    within the window of the last attempt and (rightly) skip the lookup."""
    last = max(row.updated_at for row in [await stored(database_url, pid) for pid in ids] if row)
    left = (last + timedelta(seconds=IDEMPOTENCY_TTL) - datetime.now(UTC)).total_seconds()
    if left > 0:
        await asyncio.sleep(left + 0.01)


async def assert_succeeded_once(database_url: str, gateway: GatewayProcess, ids: list[str]) -> None:
    """Stored ``succeeded`` with the gateway's charge id, and one charge in its ledger."""
    ledger = (await gateway.stats())["charges_by_key"]
    for pid in ids:
        assert ledger.get(pid) == 1
        [charge_id] = await gateway.charge_ids(pid)
        row = await stored(database_url, pid)
        assert row is not None
        assert (row.status, row.gateway_charge_id) == (PaymentStatus.SUCCEEDED, charge_id)


async def test_lost_answer_on_the_last_attempt_is_looked_up_and_ends_succeeded(
    stack: ProcessStack, connection, topology: Names, events: Collector, dlq, database_url
):
    """Two worker processes; every charge's answer is lost on the final attempt and lookups
    work: every payment ends succeeded (reconciled), none dead-lettered or parked."""
    gateway = await stack.start_gateway(**LOST_ANSWER)
    stack.start_worker(**WORKER)
    stack.start_worker(**WORKER)
    ids = await submit(connection, topology, 6)

    await events.wait_for(all_have(events, ids, "payment.succeeded"), timeout=90)
    for pid in ids:
        [event] = [e for e in events.events_for(pid) if e["routing_key"] == "payment.succeeded"]
        assert event["reconciled"] is True
        assert not FAILED & set(keys(events, pid)), keys(events, pid)
    stats = await gateway.stats()
    assert stats["lookups"] == len(ids)  # one per payment, on its last attempt
    assert stats["double_charged"] == []
    await assert_succeeded_once(database_url, gateway, ids)
    assert dlq.messages == []


async def test_unknown_while_lookups_fail_is_refused_replay_then_settled_by_the_admin(
    stack: ProcessStack,
    connection,
    topology: Names,
    events: Collector,
    requests_seen: Collector,
    database_url,
    amqp_url: str,
):
    """Lookups failing: status unknown, payment.unknown, parked outcome_unknown, never
    announced failed; replaying such an entry is refused (409, nothing published, no charge
    request). Lookups back: the admin process's reconciler settles each to succeeded, the
    entries become resolved, and a caller still waiting on reply_to gets the settled result."""
    gateway = await stack.start_gateway(**LOST_ANSWER, lookup_failure_rate=1.0)
    admin = await stack.start_admin(**FAST_RECONCILE)
    stack.start_worker(**WORKER)
    client = await RpcClient.connect(amqp_url, topology.namespace)
    try:
        waiting = payment()
        call = asyncio.create_task(client.charge(waiting, timeout=120))
        ids = [waiting["payment_id"], *await submit(connection, topology, 2)]

        await events.wait_for(all_have(events, ids, "payment.unknown"), timeout=90)
        entries = await parked_entries(admin, ids)
        for pid in ids:
            assert entries[pid]["reason"] == "outcome_unknown"
            row = await stored(database_url, pid)
            assert row is not None
            assert row.status is PaymentStatus.UNKNOWN
            assert not FAILED & set(keys(events, pid))

        charge_requests = (await gateway.stats())["requests"]
        since = len(requests_seen.messages)
        refused = await admin.replay(entries[ids[1]]["id"])
        assert refused.status_code == 409, refused.text
        assert refused.json()["code"] == "payment_unknown"
        assert await requests_published_since(requests_seen, connection, topology, since) == []
        assert (await gateway.stats())["requests"] == charge_requests
        [entry] = await admin.entries(payment_id=ids[1])
        assert entry["status"] == "parked"
        assert not call.done()

        await gateway.configure(lookup_failure_rate=0.0)
        await events.wait_for(all_have(events, ids, "payment.succeeded"), timeout=60)
        for pid in ids:
            [event] = [e for e in events.events_for(pid) if e["routing_key"] == "payment.succeeded"]
            assert event["reconciled"] is True
            assert not FAILED & set(keys(events, pid)), keys(events, pid)
        await assert_succeeded_once(database_url, gateway, ids)
        resolved = await eventually(
            lambda: admin.entries(status="resolved"),
            lambda items: {i["payment_id"] for i in items} >= set(ids),
        )
        assert {i["payment_id"] for i in resolved} == set(ids)
        result = await asyncio.wait_for(call, 60)
        assert (result.status, result.reconciled) == (PaymentStatus.SUCCEEDED, True)
    finally:
        await client.close()


async def test_timeouts_that_never_charged_are_parked_then_replayed_to_one_charge_each(
    stack: ProcessStack, connection, topology: Names, events: Collector, database_url
):
    """The gateway hangs before charging on every attempt: the worker's lookup finds no
    charge, the payments are parked retries_exhausted; replayed through the admin API once
    the gateway is healthy, each succeeds with exactly one charge. Within the idempotency
    window the replay needs no lookup."""
    gateway = await stack.start_gateway(**NEVER_CHARGED)
    admin = await stack.start_admin()
    stack.start_worker(gateway_timeout=1.0, max_attempts=2)
    ids = await submit(connection, topology, 3)

    await events.wait_for(all_have(events, ids, "payment.dead_lettered"), timeout=90)
    entries = await parked_entries(admin, ids)
    assert {e["reason"] for e in entries.values()} == {"retries_exhausted"}
    stats = await gateway.stats()
    assert stats["charges"] == 0
    assert stats["lookups"] >= len(ids)  # the worker's, on each last attempt

    await gateway.configure(timeout_rate=0.0)
    for pid in ids:
        answer = await admin.replay(entries[pid]["id"])
        assert answer.status_code == 200, answer.text
    await events.wait_for(all_have(events, ids, "payment.succeeded"), timeout=60)
    assert (await gateway.stats())["lookups"] == stats["lookups"]
    await assert_succeeded_once(database_url, gateway, ids)


async def test_replay_past_the_idempotency_window_looks_the_charge_up_first(
    stack: ProcessStack,
    connection,
    topology: Names,
    events: Collector,
    requests_seen: Collector,
    database_url,
):
    """Past PAYPROC_GATEWAY_IDEMPOTENCY_TTL a replay asks the gateway first: lookups failing
    -> 409, nothing published; lookups working and no charge -> replayed, one charge each."""
    gateway = await stack.start_gateway(failure_rate=1.0)
    admin = await stack.start_admin(gateway_idempotency_ttl=IDEMPOTENCY_TTL)
    stack.start_worker(**WORKER)
    ids = await submit(connection, topology, 2)
    await events.wait_for(all_have(events, ids, "payment.dead_lettered"), timeout=90)
    entries = await parked_entries(admin, ids)
    await past_the_idempotency_window(database_url, ids)

    await gateway.configure(failure_rate=0.0, lookup_failure_rate=1.0)
    before = await gateway.stats()
    since = len(requests_seen.messages)
    refused = await admin.replay(entries[ids[0]]["id"])
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "lookup_unavailable"
    assert await requests_published_since(requests_seen, connection, topology, since) == []
    after = await gateway.stats()
    assert after["lookups"] == before["lookups"] + 1
    assert after["requests"] == before["requests"]
    [entry] = await admin.entries(payment_id=ids[0])
    assert entry["status"] == "parked"

    await gateway.configure(lookup_failure_rate=0.0)
    since = len(requests_seen.messages)
    for pid in ids:
        answer = await admin.replay(entries[pid]["id"])
        assert answer.status_code == 200, answer.text
    published = await requests_published_since(requests_seen, connection, topology, since)
    assert sorted(published) == sorted(ids)
    assert (await gateway.stats())["lookups"] == after["lookups"] + len(ids)
    await events.wait_for(all_have(events, ids, "payment.succeeded"), timeout=60)
    await assert_succeeded_once(database_url, gateway, ids)
