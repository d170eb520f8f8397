"""The RPC client over RabbitMQ request/reply: real broker, in-process worker, fake gateway."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import aio_pika
import orjson
import pytest
from aio_pika.abc import AbstractIncomingMessage

from processor.rpc_client import ChargeTimeout, InvalidRequest, NotAccepted, RpcClient
from schemas.outcome import PaymentStatus
from tests.support.payments import payment, stored


@pytest.fixture
async def unmatched() -> asyncio.Queue[AbstractIncomingMessage]:
    return asyncio.Queue()


@pytest.fixture
async def client(amqp_url, topology, unmatched) -> AsyncIterator[RpcClient]:
    rpc = await RpcClient.connect(amqp_url, topology.namespace, on_unmatched=unmatched.put_nowait)
    yield rpc
    await rpc.close()


async def test_fifty_concurrent_charges_share_one_reply_queue(start_worker, gateway, client):
    """Fifty concurrent calls over one connection and reply queue each get their own result."""
    await start_worker(gateway_url=gateway.url)
    bodies = [payment(amount=5402 if i % 5 == 0 else 1999 + i) for i in range(50)]
    reply_queue = client.reply_queue

    results = await asyncio.gather(*(client.charge(b, timeout=30) for b in bodies))

    for body, result in zip(bodies, results, strict=True):
        assert result.payment_id == body["payment_id"]
        expected = PaymentStatus.DECLINED if body["amount"] == 5402 else PaymentStatus.SUCCEEDED
        assert result.status is expected
        assert gateway.state.charge_count(body["payment_id"]) == (
            1 if expected is PaymentStatus.SUCCEEDED else 0
        )
    assert client.reply_queue == reply_queue
    assert (client.stats.sent, client.stats.replied, client.stats.dropped) == (50, 50, 0)
    assert client.in_flight == 0


async def test_unknown_reply_is_dropped_without_error(
    start_worker, gateway, client, connection, unmatched
):
    """A reply with a correlation_id no call waits for is dropped and the client keeps working."""
    await start_worker(gateway_url=gateway.url)
    channel = await connection.channel(publisher_confirms=True)
    await channel.default_exchange.publish(
        aio_pika.Message(b'{"payment_id": "x"}', correlation_id=uuid.uuid4().hex),
        client.reply_queue,
    )
    await channel.close()

    stray = await asyncio.wait_for(unmatched.get(), 10)
    result = await client.charge(payment(), timeout=20)

    assert stray.body == b'{"payment_id": "x"}'
    assert result.status is PaymentStatus.SUCCEEDED
    assert client.stats.dropped == 1


async def test_timeout_raises_and_the_late_reply_is_dropped(
    start_worker, gateway, client, unmatched, database_url
):
    """A call that times out raises ChargeTimeout; the payment completes and its late reply
    is dropped."""
    gateway.state.update_config({"failure_rate": 1.0})
    await start_worker(gateway_url=gateway.url, max_attempts=20)
    body = payment()

    with pytest.raises(ChargeTimeout) as caught:
        await client.charge(body, timeout=0.3)
    assert caught.value.payment_id == body["payment_id"]
    assert client.in_flight == 0

    gateway.state.update_config({"failure_rate": 0.0})
    late = await asyncio.wait_for(unmatched.get(), 20)
    assert orjson.loads(late.body)["payment_id"] == body["payment_id"]
    assert orjson.loads(late.body)["status"] == "succeeded"
    row = await stored(database_url, body["payment_id"])
    assert row is not None
    assert row.status is PaymentStatus.SUCCEEDED
    assert gateway.state.charge_count(body["payment_id"]) == 1


async def test_invalid_request_raises_before_publishing(client, connection, names):
    """An invalid request raises InvalidRequest naming the field; nothing is queued."""
    with pytest.raises(InvalidRequest, match="currency"):
        await client.charge(payment(currency="euro"), timeout=5)

    channel = await connection.channel()
    queue = await channel.declare_queue(names.requests, passive=True)
    assert queue.declaration_result.message_count == 0
    assert client.stats.sent == 0
    await channel.close()


async def test_unroutable_request_is_not_accepted(amqp_url, connection):
    """Without a request queue behind the exchange the broker returns the request: NotAccepted."""
    namespace = f"rpc-noqueue-{uuid.uuid4().hex[:8]}"
    channel = await connection.channel()
    await channel.declare_exchange(namespace, aio_pika.ExchangeType.DIRECT, auto_delete=True)
    try:
        async with await RpcClient.connect(amqp_url, namespace) as rpc:
            with pytest.raises(NotAccepted, match="did not accept"):
                await rpc.charge(payment(), timeout=5)
    finally:
        await channel.exchange_delete(namespace)
        await channel.close()
