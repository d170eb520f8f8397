"""Publishing parked messages the way workers and the broker do, and small bounded waits."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import aio_pika
import orjson
from aio_pika.abc import AbstractRobustConnection
from sqlalchemy.ext.asyncio import AsyncEngine

from retry.names import DEAD_ROUTING_KEY, Names
from schemas import headers as h
from schemas.tables import PaymentRow, utcnow

T = TypeVar("T")


def request_body(amount: int = 1999, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "payment_id": str(uuid.uuid4()),
        "amount": amount,
        "currency": "EUR",
        "merchant_id": "m_123",
        "payment_method": "pm_card_visa",
    }
    body.update(fields)
    return body


def park_headers(
    *,
    reason: str = "gateway_rejected",
    park_id: str | None = None,
    payment_id: str | None = None,
    merchant_id: str | None = None,
    error_code: str = "amount_invalid",
    error: str = "The amount is not valid.",
    http_status: int | None = 422,
    exception: str | None = None,
    attempts: int = 1,
    parked_at: datetime | None = None,
    replay_of: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Headers exactly as ``AmqpPublisher.park`` writes them."""
    headers: dict[str, Any] = {
        h.PARK_ID: park_id or str(uuid.uuid4()),
        h.REASON: reason,
        h.ERROR_CODE: error_code,
        h.ERROR_MESSAGE: error,
        h.ATTEMPTS: attempts,
        h.PARKED_AT: (parked_at or datetime.now(UTC)).isoformat(),
        h.ORIGIN: "test:1",
    }
    if payment_id:
        headers[h.PAYMENT_ID] = payment_id
    if merchant_id:
        headers[h.MERCHANT_ID] = merchant_id
    if http_status is not None:
        headers[h.HTTP_STATUS] = http_status
    if exception:
        headers[h.EXCEPTION_TYPE] = exception
    if replay_of:
        headers[h.REPLAY_OF] = replay_of
    headers.update(extra or {})
    return headers


async def publish_parked(
    connection: AbstractRobustConnection,
    names: Names,
    body: bytes | dict[str, Any],
    headers: dict[str, Any],
    *,
    message_id: str | None = None,
    content_type: str | None = "application/json",
) -> None:
    """Publish one message to ``N.dlx`` (-> ``N.dlq``), confirmed, as a worker parks it."""
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    if message_id is None and isinstance(body, dict):
        message_id = body.get("payment_id")
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    try:
        exchange = await channel.get_exchange(names.dlx, ensure=False)
        await exchange.publish(
            aio_pika.Message(
                raw,
                headers=headers,
                content_type=content_type,
                message_id=message_id,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            DEAD_ROUTING_KEY,
            mandatory=True,
        )
    finally:
        await channel.close()


EXHAUSTED_AFTER_503: dict[str, Any] = {
    "reason": "retries_exhausted",
    "http_status": 503,
    "error_code": "http_503",
    "error": "Service Unavailable",
    "attempts": 6,
}
"""Park headers of a payment whose ladder ran out on 503s (``park(..., **EXHAUSTED_AFTER_503)``)."""


async def park(
    connection: AbstractRobustConnection,
    names: Names,
    body: bytes | dict[str, Any] | None = None,
    **header_fields: Any,
) -> dict[str, Any]:
    """Park one request body with worker headers; returns the body."""
    payload = body if body is not None else request_body()
    if isinstance(payload, dict):
        header_fields.setdefault("payment_id", payload.get("payment_id"))
        header_fields.setdefault("merchant_id", payload.get("merchant_id"))
    await publish_parked(connection, names, payload, park_headers(**header_fields))
    return payload if isinstance(payload, dict) else {}


async def park_many(
    connection: AbstractRobustConnection, names: Names, count: int, **header_fields: Any
) -> list[dict[str, Any]]:
    """Park ``count`` fresh request bodies on one channel (confirms pipelined), parked one
    millisecond apart in list order, so "oldest first" is the order of the returned list."""
    bodies = [request_body() for _ in range(count)]
    base = datetime.now(UTC) - timedelta(seconds=count)
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    try:
        exchange = await channel.get_exchange(names.dlx, ensure=False)
        await asyncio.gather(
            *(
                exchange.publish(
                    aio_pika.Message(
                        orjson.dumps(body),
                        headers=park_headers(
                            payment_id=body["payment_id"],
                            merchant_id=body["merchant_id"],
                            parked_at=base + timedelta(milliseconds=index),
                            **header_fields,
                        ),
                        content_type="application/json",
                        message_id=body["payment_id"],
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    DEAD_ROUTING_KEY,
                    mandatory=True,
                )
                for index, body in enumerate(bodies)
            )
        )
    finally:
        await channel.close()
    return bodies


async def queue_depth(connection: AbstractRobustConnection, queue: str) -> int:
    """Ready messages in ``queue`` (passive declare)."""
    channel = await connection.channel()
    try:
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)
    finally:
        await channel.close()


async def eventually(
    probe: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool],
    timeout: float = 20.0,
    interval: float = 0.05,
) -> T:
    """Poll ``probe`` until ``accept`` holds (bounded): for state that announces no event."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if accept(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not reached within {timeout}s; last: {value!r}")
        await asyncio.sleep(interval)


async def record_succeeded(
    engine: AsyncEngine, payment_ids: Sequence[str], merchant_id: str = "m_123"
) -> None:
    """Record payments as succeeded in the worker's table (what a worker would write)."""
    rows = [
        PaymentRow(
            payment_id=payment_id,
            status="succeeded",
            attempts=1,
            amount=1999,
            currency="EUR",
            merchant_id=merchant_id,
            fingerprint=f"1999:EUR:{merchant_id}",
            gateway_charge_id="ch_done",
            updated_at=utcnow(),
        ).model_dump()
        for payment_id in payment_ids
    ]
    async with engine.begin() as conn:
        await conn.execute(PaymentRow.__table__.insert(), rows)  # type: ignore[attr-defined]
