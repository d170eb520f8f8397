"""Ingest: parked messages move from ``N.dlq`` into the database, once, acked after commit."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import orjson
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from dlq_admin.amqp import raw_message
from processor.producer import payment_message, publish_bodies
from retry.names import Names
from schemas import headers as h
from tests.dlq_admin.conftest import OPERATOR, Admin, StartAdmin
from tests.dlq_admin.helpers import (
    eventually,
    park,
    park_headers,
    publish_parked,
    queue_depth,
    request_body,
)


async def test_parked_message_is_indexed_with_everything_an_operator_needs(admin: Admin) -> None:
    """A worker-parked message becomes one entry with reason, error, attempts, body and headers."""
    body = request_body(amount=1422, merchant_id="m_ingest")
    await park(
        admin.connection,
        admin.names,
        body,
        attempts=3,
        error_code="amount_invalid",
        error="The amount is not valid.",
        http_status=422,
        extra={h.TRACEPARENT: "00-abc-def-01", "x-producer": "shop"},
    )
    await admin.wait_handled(1)

    [item] = await admin.entries()
    assert item["payment_id"] == body["payment_id"]
    assert item["merchant_id"] == "m_ingest"
    assert item["reason"] == "gateway_rejected"
    assert item["status"] == "parked"
    assert item["attempts"] == 3
    assert item["error"] == {
        "code": "amount_invalid",
        "message": "The amount is not valid.",
        "http_status": 422,
        "exception_type": None,
    }
    assert item["fingerprint"] == "gateway_rejected|amount_invalid|422|-"

    detail = await admin.get(f"/dlq/messages/{item['id']}")
    assert detail["body"] == body
    assert detail["body_is_json"] is True
    assert detail["headers"][h.REASON] == "gateway_rejected"
    assert detail["headers"]["x-producer"] == "shop"
    assert detail["properties"]["message_id"] == body["payment_id"]
    assert detail["properties"]["content_type"] == "application/json"
    assert detail["rounds"][0]["id"] == item["id"]
    assert await queue_depth(admin.connection, admin.names.dlq) == 0


async def test_the_same_parking_delivered_twice_makes_one_entry(admin: Admin) -> None:
    """Two deliveries carrying one x-payproc-park-id are indexed once and both acked."""
    body = request_body()
    headers = park_headers(payment_id=body["payment_id"])
    await publish_parked(admin.connection, admin.names, body, headers)
    await publish_parked(admin.connection, admin.names, body, headers)
    await admin.wait_handled(2)

    assert len(await admin.entries()) == 1
    assert (admin.consumer.inserted, admin.consumer.duplicates) == (1, 1)
    assert await queue_depth(admin.connection, admin.names.dlq) == 0


async def test_a_redelivery_after_commit_but_before_ack_inserts_nothing(
    start_admin: StartAdmin, connection: AbstractRobustConnection, topology: Names
) -> None:
    """If the admin dies after committing but before acking, the broker's redelivery is a no-op."""
    body = request_body()
    await park(connection, topology, body)
    admin = await start_admin(ingest=False)

    # Play the crashed admin: take the message, commit its entry, then lose the channel unacked.
    channel = await connection.channel()
    queue = await channel.get_queue(topology.dlq, ensure=False)
    got: asyncio.Future[AbstractIncomingMessage] = asyncio.get_running_loop().create_future()

    async def take(message: AbstractIncomingMessage) -> None:
        if not got.done():
            got.set_result(message)

    await queue.consume(take, no_ack=False)
    message = await asyncio.wait_for(got, 10)
    assert await admin.service.ingest(raw_message(message)) is True
    await channel.close()  # unacked -> the broker requeues it

    await admin.runtime.start_ingest()
    await admin.wait_handled(1)
    assert admin.consumer.duplicates == 1
    assert len(await admin.entries()) == 1
    assert await queue_depth(connection, topology.dlq) == 0


async def test_parked_messages_wait_in_the_queue_while_the_admin_is_down(
    start_admin: StartAdmin, connection: AbstractRobustConnection, topology: Names
) -> None:
    """With nobody ingesting, parked messages stay in N.dlq and stats show them as waiting."""
    for _ in range(3):
        await park(connection, topology)
    admin = await start_admin(ingest=False)

    stats = await admin.get("/dlq/stats")
    assert stats["total"] == 0
    assert stats["queue"] == {"name": topology.dlq, "waiting": 3}

    await admin.runtime.start_ingest()
    await admin.wait_handled(3)
    stats = await eventually(lambda: admin.get("/dlq/stats"), lambda s: s["queue"]["waiting"] == 0)
    assert stats["total"] == 3
    assert stats["parked"] == 3
    assert stats["by_reason"] == {"gateway_rejected": 3}
    assert stats["oldest_parked_age_seconds"] is not None


async def test_a_message_dead_lettered_by_the_broker_is_indexed_as_poison(
    admin: Admin, connection: AbstractRobustConnection
) -> None:
    """A request that hit N.requests' delivery limit arrives with x-death only: reason poison."""
    body = request_body(merchant_id="m_poison")
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=1)
    queue = await channel.get_queue(admin.names.requests, ensure=False)

    async def crash(message: AbstractIncomingMessage) -> None:
        await message.nack(requeue=True)  # a worker that dies on this message every time

    tag = await queue.consume(crash, no_ack=False)
    await publish_bodies(connection, admin.names, [payment_message(body)])
    await admin.wait_handled(1)
    await queue.cancel(tag)
    await channel.close()

    [item] = await admin.entries()
    assert item["reason"] == "poison"
    assert item["error"]["code"] == "delivery_limit"
    assert item["payment_id"] == body["payment_id"]
    assert item["merchant_id"] == "m_poison"
    detail = await admin.get(f"/dlq/messages/{item['id']}")
    assert detail["headers"]["x-death"][0]["reason"] == "delivery_limit"
    assert detail["body"] == body


async def test_a_broker_dead_lettered_copy_seen_twice_is_indexed_once(admin: Admin) -> None:
    """Without a park id the key hashes the body and its x-death entry: stable on redelivery."""
    body = request_body()
    death = [
        {
            "count": 1,
            "reason": "delivery_limit",
            "queue": admin.names.requests,
            "time": aio_pika.message.datetime.now().replace(microsecond=0),
            "exchange": admin.names.exchange,
            "routing-keys": ["payment.request"],
        }
    ]
    for delivery_count in (None, 1):
        headers: dict[str, object] = {"x-death": death}
        if delivery_count:
            headers[h.BROKER_DELIVERY_COUNT] = delivery_count
        await publish_parked(admin.connection, admin.names, body, headers)  # type: ignore[arg-type]
    await admin.wait_handled(2)
    assert len(await admin.entries()) == 1


async def test_invalid_bodies_are_stored_readable_and_without_card_numbers(admin: Admin) -> None:
    """Non-UTF-8 bytes, NULs and card numbers in a parked body are stored replaced and masked."""
    raw = b'{"payment_method": "4111 1111 1111 1111", "x": "\xff\xfe\x00"'
    await publish_parked(
        admin.connection,
        admin.names,
        raw,
        park_headers(
            reason="invalid_message",
            error_code="not_json",
            error="body is not JSON",
            http_status=None,
            extra={"x-note": "card 4111111111111111"},
        ),
        message_id="not-a-payment",
    )
    await admin.wait_handled(1)
    [item] = await admin.entries(reason="invalid_message")
    detail = await admin.get(f"/dlq/messages/{item['id']}")
    text = orjson.dumps(detail).decode()
    # The card's digits, not "4111" alone: a random entry id may contain that.
    assert "4111111111111111" not in text
    assert "4111 1111 1111 1111" not in text
    assert detail["body_is_json"] is False
    assert "[REDACTED-PAN]" in detail["body"]
    assert "\ufffd" in detail["body"]
    assert "\x00" not in detail["body"]
    assert detail["body_bytes"] == len(raw)
    assert detail["headers"]["x-note"] == "card [REDACTED-PAN]"


async def test_worker_parked_invalid_messages_reach_the_admin(
    admin: Admin, start_worker, gateway, connection: AbstractRobustConnection
) -> None:
    """End to end: the worker parks a non-JSON request and a card number; both get indexed."""
    await start_worker(gateway_url=gateway.url)
    card = request_body(payment_method="4242 4242 4242 4242")
    await publish_bodies(
        connection,
        admin.names,
        [
            payment_message(card),
            aio_pika.Message(b"\x80not json at all", content_type="application/json"),
        ],
    )
    await admin.wait_handled(2)
    items = await admin.entries(reason="invalid_message")
    assert len(items) == 2
    codes = sorted(i["error"]["code"] for i in items)
    assert codes == ["not_json", "schema_violation"]
    for item in items:
        detail = await admin.get(f"/dlq/messages/{item['id']}")
        assert "4242 4242" not in orjson.dumps(detail).decode()
    assert gateway.state.requests == 0


async def test_ingest_survives_a_message_with_garbage_headers(admin: Admin) -> None:
    """Unknown reasons, wrong types and huge values degrade to a stored entry, never a loop."""
    headers = {
        h.REASON: "exploded",
        h.PARK_ID: str(uuid.uuid4()),
        h.HTTP_STATUS: "teapot",
        h.ATTEMPTS: -5,
        h.PARKED_AT: "yesterday",
        "nested": {"deep": [1, 2, {"x": "text"}]},
    }
    await publish_parked(admin.connection, admin.names, b"", headers, content_type=None)
    await admin.wait_handled(1)
    [item] = await admin.entries()
    assert item["reason"] == "poison"
    assert item["error"]["code"].startswith("unknown_reason")
    assert item["error"]["http_status"] is None
    assert item["attempts"] == 0
    response = await admin.client.get(f"/dlq/messages/{item['id']}", headers=OPERATOR)
    assert response.status_code == 200
    assert response.json()["headers"]["nested"]["deep"][2]["x"] == "text"
