"""Outcome truth end to end: real broker, worker, store and fake gateway over HTTP.

The fake gateway charges and then hangs past the worker's timeout on the final attempt: the
answer is lost although the card was charged. payproc must never announce such a payment as
failed: it looks the charge up, and when the lookup cannot answer the payment is ``unknown``.
"""

from __future__ import annotations

from typing import Any

from processor.producer import payment_message, publish_bodies
from schemas import headers as h
from schemas.outcome import PaymentStatus
from tests.support.collect import Collector
from tests.support.payments import payment, stored

LOST_ANSWER = {"charge_then_timeout_rate": 1.0, "hang_seconds": 10.0}
"""Every first charge of a key is made, then its answer hangs past the worker's timeout."""


def keys(events: Collector, payment_id: str) -> list[str]:
    return [e["routing_key"] for e in events.events_for(payment_id)]


def all_have(events: Collector, payment_ids: list[str], key: str) -> Any:
    return lambda _ms: all(key in keys(events, pid) for pid in payment_ids)


async def test_lost_answer_on_the_last_attempt_with_a_charge_ends_succeeded(
    start_worker, connection, topology, events, gateway, dlq, database_url
):
    """Charged, answer lost on the final attempt, lookup works: succeeded, reconciled, never
    dead_lettered; the stored charge id is the gateway's."""
    gateway.state.update_config(LOST_ANSWER)
    await start_worker(gateway_url=gateway.url, gateway_timeout=0.5, max_attempts=1)
    bodies = [payment() for _ in range(8)]
    ids = [b["payment_id"] for b in bodies]
    await publish_bodies(connection, topology, [payment_message(b) for b in bodies])

    await events.wait_for(all_have(events, ids, "payment.succeeded"))
    for pid in ids:
        assert "payment.dead_lettered" not in keys(events, pid)
        [event] = [e for e in events.events_for(pid) if e["routing_key"] == "payment.succeeded"]
        assert event["reconciled"] is True
        [charge_id] = gateway.state.charge_ids[pid]
        assert event["gateway_charge_id"] == charge_id
        row = await stored(database_url, pid)
        assert row is not None
        assert (row.status, row.gateway_charge_id) == (PaymentStatus.SUCCEEDED, charge_id)
    assert gateway.state.lookups == len(ids)
    assert dlq.messages == []


async def test_lost_answer_with_lookups_failing_is_unknown_never_failed(
    start_worker, connection, topology, events, gateway, dlq, database_url
):
    """The gateway charged and cannot be asked: status unknown, event payment.unknown, parked
    as outcome_unknown; nothing says the payment failed."""
    gateway.state.update_config({**LOST_ANSWER, "lookup_failure_rate": 1.0})
    await start_worker(gateway_url=gateway.url, gateway_timeout=0.5, max_attempts=1)
    bodies = [payment() for _ in range(4)]
    ids = [b["payment_id"] for b in bodies]
    await publish_bodies(connection, topology, [payment_message(b) for b in bodies])

    await events.wait_for(all_have(events, ids, "payment.unknown"))
    parked = await dlq.wait_count(len(ids))
    assert {m.headers[h.REASON] for m in parked} == {"outcome_unknown"}
    assert {m.headers[h.PAYMENT_ID] for m in parked} == set(ids)
    for pid in ids:
        assert "payment.dead_lettered" not in keys(events, pid)
        row = await stored(database_url, pid)
        assert row is not None
        assert row.status is PaymentStatus.UNKNOWN
        assert gateway.state.charge_count(pid) == 1


async def test_timeouts_that_never_charged_are_parked_retries_exhausted(
    start_worker, connection, topology, events, gateway, dlq, database_url
):
    """Hung before charging on every attempt: the lookup finds no charge, so the payment is
    parked as retries_exhausted (known not charged)."""
    gateway.state.update_config({"timeout_rate": 1.0, "hang_seconds": 10.0})
    await start_worker(gateway_url=gateway.url, gateway_timeout=0.5, max_attempts=2)
    body = payment()
    pid = body["payment_id"]
    await publish_bodies(connection, topology, [payment_message(body)])

    [parked] = await dlq.wait_count(1)
    assert parked.headers[h.REASON] == "retries_exhausted"
    assert parked.headers[h.ATTEMPTS] == 2
    await events.wait_for(lambda _ms: "payment.dead_lettered" in keys(events, pid))
    assert gateway.state.charge_count(pid) == 0
    assert gateway.state.lookups == 1
