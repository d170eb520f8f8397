"""Publishing payment requests with publisher confirms (``payproc submit``, demo, tests)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractRobustConnection

from retry.names import REQUEST_ROUTING_KEY, Names

_SPECIAL_RESIDUES = frozenset({400, 401, 402, 403, 404, 409, 422})


def generate_payment(
    rng: random.Random, decline_rate: float = 0.0, reject_rate: float = 0.0
) -> dict[str, Any]:
    """A valid request; amounts ending in 402/422 ask the fake gateway to decline/reject."""
    roll = rng.random()
    amount = rng.randrange(100, 100_000)
    while amount % 1000 in _SPECIAL_RESIDUES:
        amount += 1
    if roll < decline_rate:
        amount = rng.randrange(1, 100) * 1000 + 402
    elif roll < decline_rate + reject_rate:
        amount = rng.randrange(1, 100) * 1000 + 422
    return {
        "payment_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "amount": amount,
        "currency": rng.choice(["EUR", "USD", "GBP"]),
        "merchant_id": f"m_{rng.randrange(1, 50)}",
        "payment_method": rng.choice(["pm_card_visa", "pm_card_mastercard", "pm_sepa_debit"]),
        "customer_id": f"c_{rng.randrange(1, 10_000)}",
        "description": f"Order {rng.randrange(1000, 99999)}",
        "metadata": {"order_id": str(rng.randrange(1000, 99999))},
    }


def generate_payments(
    count: int, seed: int | None = None, decline_rate: float = 0.0, reject_rate: float = 0.0
) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    for _ in range(count):
        yield generate_payment(rng, decline_rate, reject_rate)


def request_message(
    body: bytes,
    message_id: str | None = None,
    *,
    content_type: str | None = "application/json",
    reply_to: str | None = None,
    correlation_id: str | None = None,
    headers: dict[str, Any] | None = None,
) -> aio_pika.Message:
    return aio_pika.Message(
        body,
        content_type=content_type,
        message_id=message_id,
        reply_to=reply_to,
        correlation_id=correlation_id,
        headers=headers or {},
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


async def publish_bodies(
    connection: AbstractRobustConnection,
    names: Names,
    messages: Iterable[aio_pika.Message],
    *,
    window: int = 500,
    on_confirmed: Callable[[int], None] | None = None,
) -> int:
    """Publish to ``N``/``payment.request``, ``window`` confirms in flight; returns the count.

    Every publish is mandatory and confirmed: when this returns, the broker has every message.
    """
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    try:
        exchange = await channel.get_exchange(names.exchange, ensure=False)
        sent = 0
        batch: list[aio_pika.Message] = []

        async def flush() -> None:
            nonlocal sent
            await asyncio.gather(
                *(exchange.publish(m, REQUEST_ROUTING_KEY, mandatory=True) for m in batch)
            )
            sent += len(batch)
            if on_confirmed is not None:
                on_confirmed(len(batch))
            batch.clear()

        for message in messages:
            batch.append(message)
            if len(batch) >= window:
                await flush()
        if batch:
            await flush()
        return sent
    finally:
        await channel.close()


def payment_message(payment: dict[str, Any], **kwargs: Any) -> aio_pika.Message:
    return request_message(orjson.dumps(payment), str(payment.get("payment_id")), **kwargs)
