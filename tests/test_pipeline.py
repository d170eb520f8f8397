"""Every row of SPEC's outcome table, end to end: real broker, worker, store, fake gateway."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from typing import Any

import aio_pika
import orjson
import pytest

from processor.producer import payment_message, publish_bodies, request_message
from schemas import headers as h
from schemas.outcome import PaymentStatus
from tests.support.collect import Received, collect_exchange
from tests.support.payments import payment, stored


def routing_keys(messages: list[Received], payment_id: str) -> list[str]:
    return [m.routing_key for m in messages if m.json().get("payment_id") == payment_id]


def has_event(payment_id: str, key: str) -> Any:
    return lambda ms: key in routing_keys(ms, payment_id)


async def publish(connection, names, *bodies: dict[str, Any], **kwargs: Any) -> None:
    await publish_bodies(connection, names, [payment_message(b, **kwargs) for b in bodies])


async def test_success_is_stored_announced_and_replied(
    start_worker, connection, topology, events, gateway, database_url
):
    """A charged payment is stored as succeeded, announced, and answered on reply_to."""
    await start_worker(gateway_url=gateway.url)
    channel = await connection.channel()
    reply_queue = await channel.declare_queue(exclusive=True)
    replies: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
    await reply_queue.consume(replies.put, no_ack=True)
    body = payment()
    await publish(connection, topology, body, reply_to=reply_queue.name, correlation_id="corr-1")

    reply = await asyncio.wait_for(replies.get(), 60)
    result = orjson.loads(reply.body)
    assert reply.correlation_id == "corr-1"
    assert result["status"] == "succeeded"
    assert result["attempts"] == 1
    assert result["gateway_charge_id"].startswith("ch_")
    await events.wait_for(has_event(body["payment_id"], "payment.succeeded"))
    row = await stored(database_url, body["payment_id"])
    assert row is not None
    assert row.status is PaymentStatus.SUCCEEDED
    assert row.gateway_charge_id == result["gateway_charge_id"]
    assert gateway.state.charge_count(body["payment_id"]) == 1
    await channel.close()


async def test_decline_is_final_and_never_retried(
    start_worker, connection, topology, events, gateway, dlq
):
    """A 402 is a business answer: declined once, no retry, nothing parked."""
    await start_worker(gateway_url=gateway.url)
    body = payment(amount=5402)
    await publish(connection, topology, body)
    await events.wait_for(has_event(body["payment_id"], "payment.declined"))
    declined = [e for e in events.events_for(body["payment_id"]) if e["status"] == "declined"]
    assert declined[0]["error"]["code"] == "card_declined"
    assert "payment.retry_scheduled" not in routing_keys(events.messages, body["payment_id"])
    assert gateway.state.requests == 1
    assert dlq.messages == []


async def test_transient_failure_retries_then_succeeds(
    start_worker, connection, topology, events, gateway, database_url
):
    """A 503 sends the payment through the first retry queue and the next attempt succeeds."""
    gateway.state.update_config({"failure_rate": 1.0})
    await start_worker(gateway_url=gateway.url)
    body = payment()
    await publish(connection, topology, body)
    await events.wait_for(has_event(body["payment_id"], "payment.retry_scheduled"))
    gateway.state.update_config({"failure_rate": 0.0})
    await events.wait_for(has_event(body["payment_id"], "payment.succeeded"))
    scheduled = [
        e for e in events.events_for(body["payment_id"]) if e["status"] == "retry_scheduled"
    ]
    assert scheduled[0]["delay_seconds"] == 0.1
    assert scheduled[0]["error"]["code"] == "http_503" or scheduled[0]["error"]["code"]
    row = await stored(database_url, body["payment_id"])
    assert row is not None
    assert row.status is PaymentStatus.SUCCEEDED
    assert row.attempts >= 2
    assert gateway.state.charge_count(body["payment_id"]) == 1


async def test_exhausted_retries_are_parked_with_small_headers(
    start_worker, connection, topology, events, gateway, dlq, database_url
):
    """After MAX_ATTEMPTS transient failures the payment is parked as retries_exhausted."""
    gateway.state.update_config({"failure_rate": 1.0})
    await start_worker(gateway_url=gateway.url, max_attempts=4)
    body = payment()
    await publish(connection, topology, body)
    parked = (await dlq.wait_count(1))[0]
    assert parked.headers[h.REASON] == "retries_exhausted"
    assert parked.headers[h.ATTEMPTS] == 4
    assert parked.headers[h.PAYMENT_ID] == body["payment_id"]
    assert h.BROKER_DEATH not in parked.headers, "x-death must be stripped on republish"
    assert orjson.loads(parked.body) == body
    assert gateway.state.answers[503] == 4
    delays = [
        e["delay_seconds"]
        for e in events.events_for(body["payment_id"])
        if e["status"] == "retry_scheduled"
    ]
    assert delays == [0.1, 0.2, 0.4]
    await events.wait_for(has_event(body["payment_id"], "payment.dead_lettered"))
    row = await stored(database_url, body["payment_id"])
    assert row is not None
    assert row.status is PaymentStatus.DEAD_LETTERED
    assert row.dead_letter_reason == "retries_exhausted"


async def test_rate_limit_retry_after_picks_a_long_enough_queue(
    start_worker, connection, topology, events, gateway
):
    """A 429 with Retry-After 0.3 s skips the 0.1 and 0.2 s queues and waits in the 0.4 s one."""
    gateway.state.update_config({"rate_limit_rate": 1.0, "retry_after": 0.3})
    await start_worker(gateway_url=gateway.url)
    body = payment()
    await publish(connection, topology, body)
    await events.wait_for(has_event(body["payment_id"], "payment.retry_scheduled"))
    gateway.state.update_config({"rate_limit_rate": 0.0})
    await events.wait_for(has_event(body["payment_id"], "payment.succeeded"))
    first = next(
        e for e in events.events_for(body["payment_id"]) if e["status"] == "retry_scheduled"
    )
    assert first["delay_seconds"] == 0.4
    assert first["error"]["code"] in {"rate_limited", "http_429"}


@pytest.mark.parametrize("knob", ["timeout_rate", "charge_then_timeout_rate"])
async def test_timeouts_are_retried_and_charge_once(
    start_worker, connection, topology, events, gateway, knob
):
    """A lost response (before or after the charge) is retried with the same key: one charge."""
    gateway.state.update_config({knob: 1.0, "hang_seconds": 5.0})
    await start_worker(gateway_url=gateway.url, gateway_timeout=0.3)
    body = payment()
    await publish(connection, topology, body)
    await events.wait_for(has_event(body["payment_id"], "payment.retry_scheduled"))
    gateway.state.update_config({knob: 0.0})
    await events.wait_for(has_event(body["payment_id"], "payment.succeeded"), timeout=30)
    first = next(
        e for e in events.events_for(body["payment_id"]) if e["status"] == "retry_scheduled"
    )
    assert first["error"]["code"] == "gateway_timeout"
    assert gateway.state.charge_count(body["payment_id"]) == 1


async def test_gateway_auth_failures_are_retried_not_rejected(
    start_worker, connection, topology, events, gateway, dlq
):
    """401/403 are our credentials' fault: retried, and parked only as retries_exhausted."""
    await start_worker(gateway_url=gateway.url, max_attempts=2)
    unauthorized, forbidden = payment(amount=3401), payment(amount=3403)
    await publish(connection, topology, unauthorized, forbidden)
    parked = await dlq.wait_count(2)
    assert {m.headers[h.REASON] for m in parked} == {"retries_exhausted"}
    assert {m.headers[h.HTTP_STATUS] for m in parked} == {401, 403}
    for body in (unauthorized, forbidden):
        assert "payment.retry_scheduled" in routing_keys(events.messages, body["payment_id"])


@pytest.mark.parametrize("status", [400, 404, 409, 422])
async def test_gateway_rejections_are_parked_without_retry(
    start_worker, connection, topology, events, gateway, dlq, status
):
    """400/404/409/422 mean the request is wrong: parked at once as gateway_rejected."""
    await start_worker(gateway_url=gateway.url)
    body = payment(amount=7000 + status)
    await publish(connection, topology, body)
    parked = (await dlq.wait_count(1))[0]
    assert parked.headers[h.REASON] == "gateway_rejected"
    assert parked.headers[h.HTTP_STATUS] == status
    assert gateway.state.requests == 1
    assert "payment.retry_scheduled" not in routing_keys(events.messages, body["payment_id"])


INVALID_BODIES = {
    "not_json": (b"{not json", "application/json"),
    "unknown_field": (orjson.dumps(payment(surprise=1)), "application/json"),
    "wrong_type": (orjson.dumps(payment(amount="12.00")), "application/json"),
    "card_number": (
        orjson.dumps(payment(payment_method="4242 4242 4242 4242")),
        "application/json",
    ),
    "card_in_metadata": (
        orjson.dumps(payment(metadata={"note": "4111111111111111"})),
        "application/json",
    ),
    "wrong_content_type": (orjson.dumps(payment()), "text/plain"),
    "oversized": (orjson.dumps(payment(description="x" * 70_000)), "application/json"),
}


@pytest.mark.parametrize("case", sorted(INVALID_BODIES))
async def test_invalid_messages_are_parked_without_gateway_call(
    start_worker, connection, topology, gateway, dlq, case
):
    """Malformed input is parked once as invalid_message; the gateway is never called."""
    await start_worker(gateway_url=gateway.url)
    body, content_type = INVALID_BODIES[case]
    await publish_bodies(connection, topology, [request_message(body, content_type=content_type)])
    parked = (await dlq.wait_count(1))[0]
    assert parked.headers[h.REASON] == "invalid_message"
    assert parked.headers[h.ERROR_CODE]
    assert gateway.state.requests == 0
    for digits in ("4242 4242 4242 4242", "4111111111111111"):
        assert digits.encode() not in parked.body
        assert digits not in str(parked.headers)


async def test_repeated_crashes_park_the_message_as_poison(
    start_worker, connection, topology, gateway, dlq
):
    """A message whose processing keeps crashing is parked as poison after a few deliveries."""

    class ExplodingGateway:
        calls = 0

        async def charge(self, request: Any, traceparent: str | None = None) -> Any:
            ExplodingGateway.calls += 1
            raise RuntimeError("bug in a plug-in")

    worker = await start_worker(gateway_url=gateway.url, poison_threshold=3)
    consumer = worker.consumer
    consumer._deps = dataclasses.replace(consumer._deps, gateway=ExplodingGateway())
    body = payment()
    await publish(connection, topology, body)
    parked = (await dlq.wait_count(1))[0]
    assert parked.headers[h.REASON] == "poison"
    assert parked.headers[h.EXCEPTION_TYPE] == "RuntimeError"
    assert ExplodingGateway.calls == 3


async def test_duplicate_of_final_payment_resends_result_without_charging(
    start_worker, connection, topology, events, gateway
):
    """Publishing a succeeded payment again calls no gateway and replies with the stored result."""
    await start_worker(gateway_url=gateway.url)
    channel = await connection.channel()
    reply_queue = await channel.declare_queue(exclusive=True)
    replies: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
    await reply_queue.consume(replies.put, no_ack=True)
    body = payment()
    await publish(connection, topology, body, reply_to=reply_queue.name, correlation_id="a")
    first = orjson.loads((await asyncio.wait_for(replies.get(), 60)).body)
    await publish(connection, topology, body, reply_to=reply_queue.name, correlation_id="b")
    second_message = await asyncio.wait_for(replies.get(), 60)
    second = orjson.loads(second_message.body)
    assert second_message.correlation_id == "b"
    assert second["gateway_charge_id"] == first["gateway_charge_id"]
    assert gateway.state.requests == 1
    await channel.close()


async def test_same_payment_id_with_other_amount_is_refused(
    start_worker, connection, topology, events, gateway, dlq
):
    """Reusing a payment_id with a different amount parks the second message, charging nothing."""
    await start_worker(gateway_url=gateway.url)
    body = payment(amount=1000)
    await publish(connection, topology, body)
    await events.wait_for(has_event(body["payment_id"], "payment.succeeded"))
    await publish(connection, topology, {**body, "amount": 999_999})
    parked = (await dlq.wait_count(1))[0]
    assert parked.headers[h.REASON] == "invalid_message"
    assert parked.headers[h.ERROR_CODE] == "idempotency_conflict"
    assert gateway.state.requests == 1


async def test_workers_share_the_queue_and_duplicates_charge_once(
    start_worker, connection, topology, gateway, database_url
):
    """Two workers split 200 payments; five copies of one payment are charged exactly once."""
    workers = [await start_worker(gateway_url=gateway.url, prefetch=20) for _ in range(2)]
    events_collector, channel = await collect_exchange(
        connection, topology.events, "payment.succeeded"
    )
    bodies = [payment() for _ in range(200)]
    duplicated = payment()
    await publish(connection, topology, *bodies, *([duplicated] * 5))
    await events_collector.wait_for(
        lambda ms: len({m.json()["payment_id"] for m in ms}) == 201, timeout=60
    )
    assert all(w.consumer.stats.gateway_calls > 0 for w in workers)
    assert gateway.state.double_charged == []
    assert gateway.state.charge_count(duplicated["payment_id"]) == 1
    row = await stored(database_url, duplicated["payment_id"])
    assert row is not None
    assert row.status is PaymentStatus.SUCCEEDED
    await channel.close()


async def test_outcomes_do_not_need_an_event_subscriber(
    start_worker, connection, topology, gateway, database_url
):
    """With nobody bound to the events exchange, payments still complete (events are optional)."""
    worker = await start_worker(gateway_url=gateway.url)
    bodies = [payment() for _ in range(20)]
    await publish(connection, topology, *bodies)
    done = asyncio.Event()

    def check(_handled: Any, _seconds: float) -> None:
        if sum(worker.consumer.stats.outcomes.values()) >= 20:
            done.set()

    worker.consumer._on_outcome = check
    if sum(worker.consumer.stats.outcomes.values()) < 20:
        await asyncio.wait_for(done.wait(), 60)
    assert worker.consumer.stats.outcomes.get("succeeded") == 20
    for body in bodies:
        row = await stored(database_url, body["payment_id"])
        assert row is not None
        assert row.status is PaymentStatus.SUCCEEDED


def test_unique_ids_in_this_module() -> None:
    """The helper builds a fresh payment_id for every payment."""
    assert payment()["payment_id"] != payment()["payment_id"]
    uuid.UUID(payment()["payment_id"])


async def test_traceparent_follows_the_payment_to_gateway_retry_dlq_and_events(
    start_worker, connection, topology, events, gateway, dlq, monkeypatch
):
    """One trace id travels from the request through every gateway call, retry and park."""
    from processor.adapters import http_gateway

    seen: list[str | None] = []
    real_post = http_gateway.HttpGateway._post

    async def spy(self, body, headers):  # records the headers the gateway receives
        seen.append(headers.get("traceparent"))
        return await real_post(self, body, headers)

    monkeypatch.setattr(http_gateway.HttpGateway, "_post", spy)
    gateway.state.update_config({"failure_rate": 1.0})
    await start_worker(gateway_url=gateway.url, max_attempts=2)
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    body = payment()
    await publish(connection, topology, body, headers={"traceparent": trace})
    parked = (await dlq.wait_count(1))[0]
    await events.wait_for(has_event(body["payment_id"], "payment.dead_lettered"))
    assert parked.headers["traceparent"] == trace
    assert len(seen) == 2
    trace_id = trace.split("-")[1]
    assert all(t is not None and t.split("-")[1] == trace_id for t in seen)
    assert all(t != trace for t in seen), "each gateway call is a child span"
    dead = next(m for m in events.messages if m.routing_key == "payment.dead_lettered")
    assert dead.headers["traceparent"] == trace


async def test_duplicate_of_a_parked_payment_reparks_under_the_same_park_id(
    start_worker, connection, topology, gateway, dlq
):
    """A payment whose DLQ copy may have been lost is parked again with the same park id."""
    await start_worker(gateway_url=gateway.url)
    body = payment(amount=8422)
    await publish(connection, topology, body)
    first = (await dlq.wait_count(1))[0]
    await publish(connection, topology, body)
    second = (await dlq.wait_count(2))[1]
    assert first.headers[h.PARK_ID] == second.headers[h.PARK_ID]
    assert second.headers[h.REASON] == "gateway_rejected"
    assert gateway.state.requests == 1
