"""Await what the system publishes instead of sleeping: events and parked messages."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection


@dataclass
class Received:
    routing_key: str
    body: bytes
    headers: dict[str, Any]
    properties: dict[str, Any]

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Collector:
    """Collects every message of one queue and lets tests await a condition on them."""

    messages: list[Received] = field(default_factory=list)
    by_key: dict[str, list[Received]] = field(default_factory=lambda: defaultdict(list))
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        received = Received(
            routing_key=message.routing_key or "",
            body=message.body,
            headers=dict(message.headers or {}),
            properties={
                "correlation_id": message.correlation_id,
                "message_id": message.message_id,
                "content_type": message.content_type,
            },
        )
        await message.ack()
        async with self._changed:
            self.messages.append(received)
            self._changed.notify_all()

    def events_for(self, payment_id: str) -> list[dict[str, Any]]:
        out = []
        for m in self.messages:
            try:
                data = orjson.loads(m.body)
            except orjson.JSONDecodeError:
                continue
            if isinstance(data, dict) and data.get("payment_id") == payment_id:
                out.append({"routing_key": m.routing_key, **data})
        return out

    async def wait_for(self, predicate: Any, timeout: float = 60.0) -> list[Received]:
        """Wait until ``predicate(messages)`` is true; returns the messages."""

        async def _wait() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: predicate(self.messages))

        await asyncio.wait_for(_wait(), timeout)
        return self.messages

    async def wait_count(self, count: int, timeout: float = 60.0) -> list[Received]:
        return await self.wait_for(lambda ms: len(ms) >= count, timeout)


def saw(payment_id: str, routing_key: str) -> Callable[[list[Received]], bool]:
    """A ``Collector.wait_for`` predicate: a ``routing_key`` message about ``payment_id``."""

    def predicate(messages: list[Received]) -> bool:
        return any(
            m.routing_key == routing_key and m.json().get("payment_id") == payment_id
            for m in messages
        )

    return predicate


async def collect_queue(
    connection: AbstractRobustConnection, queue_name: str
) -> tuple[Collector, aio_pika.abc.AbstractChannel]:
    """Consume an existing queue (e.g. ``N.dlq``) into a collector."""
    channel = await connection.channel()
    collector = Collector()
    queue = await channel.get_queue(queue_name, ensure=False)
    await queue.consume(collector.on_message)
    return collector, channel


async def collect_exchange(
    connection: AbstractRobustConnection, exchange_name: str, binding: str = "#"
) -> tuple[Collector, aio_pika.abc.AbstractChannel]:
    """Bind an exclusive queue to an exchange and collect what is published there."""
    channel = await connection.channel()
    collector = Collector()
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(exchange_name, binding)
    await queue.consume(collector.on_message)
    return collector, channel
