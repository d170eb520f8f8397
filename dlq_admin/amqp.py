"""aio-pika adapters of the admin: the replay publisher, the DLQ depth probe and the ingest
consumer.

Ingest acks a message only after its entry is committed: a crash in between leaves the
message in ``N.dlq`` and the redelivery inserts nothing (``dedup_key``). While the admin is
down nothing is consumed and parked messages simply wait in the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError, DeliveryError
from aiormq.exceptions import ChannelNotFoundEntity

from dlq_admin.errors import Unavailable
from dlq_admin.ports import PublishError, RawMessage
from dlq_admin.service import DlqAdmin
from retry.names import REQUEST_ROUTING_KEY, Names
from retry.topology import quorum_arguments

log = logging.getLogger("payproc.admin")

_PUBLISH_ERRORS = (
    TimeoutError,
    DeliveryError,
    AMQPError,
    ChannelInvalidStateError,
    ConnectionError,
    RuntimeError,
)


async def declare_dlq_topology(connection: AbstractRobustConnection, names: Names) -> None:
    """Declare what the admin itself needs (idempotent, same arguments as the workers use):
    ``N`` (replays go there), ``N.dlx`` -> ``N.dlq`` and ``N.events``."""
    channel = await connection.channel()
    try:
        await channel.declare_exchange(names.exchange, aio_pika.ExchangeType.DIRECT, durable=True)
        dlx = await channel.declare_exchange(names.dlx, aio_pika.ExchangeType.FANOUT, durable=True)
        await channel.declare_exchange(names.events, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(
            names.dlq, durable=True, arguments=dict(quorum_arguments())
        )
        await queue.bind(dlx, "")
    finally:
        if not channel.is_closed:
            await channel.close()


class AmqpReplayPublisher:
    """Publishes replays on a confirming channel whose returns raise (``mandatory``)."""

    def __init__(self, connection: AbstractRobustConnection, names: Names) -> None:
        self._connection = connection
        self._names = names
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._events: AbstractExchange | None = None
        self.published = 0

    async def open(self) -> None:
        channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        self._channel = channel
        self._exchange = await channel.get_exchange(self._names.exchange, ensure=False)
        self._events = await channel.get_exchange(self._names.events, ensure=False)

    async def close(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()

    async def publish_request(
        self, body: bytes, headers: dict[str, Any], message_id: str | None
    ) -> None:
        if self._exchange is None:
            raise PublishError("publisher is not open")
        message = aio_pika.Message(
            body,
            headers=headers,
            content_type="application/json",
            message_id=message_id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            timestamp=datetime.now(UTC),
        )
        try:
            await self._exchange.publish(message, REQUEST_ROUTING_KEY, mandatory=True, timeout=15)
        except _PUBLISH_ERRORS as exc:
            raise PublishError(f"{type(exc).__name__}: {exc}"[:300]) from exc
        self.published += 1

    async def publish_event(self, routing_key: str, body: dict[str, Any]) -> None:
        if self._events is None:
            return
        message = aio_pika.Message(
            orjson.dumps(body),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        try:
            await self._events.publish(message, routing_key, mandatory=False, timeout=15)
        except _PUBLISH_ERRORS as exc:
            raise PublishError(f"{type(exc).__name__}: {exc}"[:300]) from exc


class AmqpQueueProbe:
    """How many messages wait in ``N.dlq`` (a passive declare on a throw-away channel)."""

    def __init__(self, connection: AbstractRobustConnection, queue_name: str) -> None:
        self._connection = connection
        self._queue_name = queue_name

    async def waiting(self) -> int | None:
        try:
            channel = await asyncio.wait_for(self._connection.channel(), 5)
        except (*_PUBLISH_ERRORS, ChannelNotFoundEntity):
            return None
        try:
            declared = await asyncio.wait_for(
                channel.declare_queue(self._queue_name, passive=True), 5
            )
            count = declared.declaration_result.message_count
            return int(count) if count is not None else None
        except (*_PUBLISH_ERRORS, ChannelNotFoundEntity):
            return None
        finally:
            if not channel.is_closed:
                with contextlib.suppress(*_PUBLISH_ERRORS):
                    await channel.close()


def raw_message(message: AbstractIncomingMessage) -> RawMessage:
    return RawMessage(
        body=message.body,
        headers=dict(message.headers or {}),
        content_type=message.content_type,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        reply_to=message.reply_to,
        timestamp=message.timestamp,
    )


class DlqConsumer:
    """Consumes ``N.dlq`` into the store; ack after commit, requeue (after a pause) on failure.

    ``handled`` counts settled messages (new or duplicate); ``wait_handled`` lets tests and the
    runtime await progress instead of sleeping.
    """

    def __init__(
        self,
        connection: AbstractRobustConnection,
        names: Names,
        service: DlqAdmin,
        *,
        prefetch: int = 200,
        retry_pause: float = 1.0,
    ) -> None:
        self._connection = connection
        self._names = names
        self._service = service
        self._prefetch = prefetch
        self._retry_pause = retry_pause
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None
        self.inserted = 0
        self.duplicates = 0
        self.failures = 0
        self._changed = asyncio.Condition()
        self._in_flight: set[asyncio.Task[Any]] = set()

    @property
    def handled(self) -> int:
        return self.inserted + self.duplicates

    @property
    def attached(self) -> bool:
        """True while the ingest consumer is registered on the DLQ."""
        return self._tag is not None

    async def start(self) -> None:
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=self._prefetch)
        self._channel = channel
        self._queue = await channel.get_queue(self._names.dlq, ensure=True)
        self._tag = await self._queue.consume(self._on_message, no_ack=False)
        log.info("dlq ingest consuming", extra={"queue": self._names.dlq})

    async def stop(self) -> None:
        if self._queue is not None and self._tag is not None:
            tag, self._tag = self._tag, None
            with contextlib.suppress(*_PUBLISH_ERRORS):
                await self._queue.cancel(tag)
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=10)
        if self._channel is not None and not self._channel.is_closed:
            with contextlib.suppress(*_PUBLISH_ERRORS):
                await self._channel.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            await self._ingest(message)
        finally:
            if task is not None:
                self._in_flight.discard(task)

    async def _ingest(self, message: AbstractIncomingMessage) -> None:
        try:
            inserted = await self._service.ingest(raw_message(message))
        except asyncio.CancelledError:
            await self._settle(message, requeue=True)
            raise
        except Exception as exc:
            self.failures += 1
            level = logging.WARNING if isinstance(exc, Unavailable) else logging.ERROR
            log.log(
                level,
                "could not index a parked message; it stays in the queue",
                exc_info=not isinstance(exc, Unavailable),
                extra={"error": f"{type(exc).__name__}: {exc}"[:300]},
            )
            await asyncio.sleep(self._retry_pause)  # back-off before the broker redelivers
            await self._settle(message, requeue=True)
            return
        await self._settle(message, requeue=None)
        async with self._changed:
            if inserted:
                self.inserted += 1
            else:
                self.duplicates += 1
            self._changed.notify_all()

    async def _settle(self, message: AbstractIncomingMessage, requeue: bool | None) -> None:
        try:
            if requeue is None:
                await message.ack()
            else:
                await message.nack(requeue=True)
        except _PUBLISH_ERRORS as exc:
            # The channel went away: the broker redelivers and the dedup key absorbs it.
            log.warning("could not settle a DLQ message: %s", exc)

    async def wait_handled(self, count: int) -> None:
        """Wait until at least ``count`` messages were indexed or recognised as duplicates
        (callers bound the wait with ``asyncio.timeout``)."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.handled >= count)


__all__ = [
    "AmqpQueueProbe",
    "AmqpReplayPublisher",
    "DlqConsumer",
    "declare_dlq_topology",
    "raw_message",
]
