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
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiormq
import orjson
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aiormq.exceptions import ChannelNotFoundEntity
from pamqp.commands import Basic

from dlq_admin.errors import Unavailable
from dlq_admin.ports import OutgoingRequest, RawMessage
from dlq_admin.service import DlqAdmin
from retry.confirmed_publish import (
    PUBLISH_ERRORS,
    ConfirmingChannel,
    Publication,
    publish_confirmed,
)
from retry.errors import PublishNotConfirmed
from retry.names import REQUEST_ROUTING_KEY, Names
from retry.topology import declare_dlq_topology

log = logging.getLogger("payproc.admin")

# A publish failed, or the queue or exchange it needs is gone.
_PUBLISH_OR_MISSING: tuple[type[BaseException], ...] = (*PUBLISH_ERRORS, ChannelNotFoundEntity)
_CONFIRM_TIMEOUT = 15.0
_PERSISTENT = int(aio_pika.DeliveryMode.PERSISTENT)


class AmqpReplayPublisher:
    """Publishes replays (``mandatory``) and events through ``retry.confirmed_publish``.

    A batch is pipelined: every message is handed to the connection's writer without waiting
    for its socket write and then each waits for its own confirm, so a chunk of a bulk replay
    costs one round trip, not one per message.

    aiormq matches a ``basic.return`` to its publish by ``message_id``, so two messages with
    the same ``message_id`` (two parked entries of one payment) must not be in flight
    together, or the return of one could fail the other and let the returned one count as
    confirmed. A request whose ``message_id`` is in flight waits until that one is settled.
    """

    def __init__(self, connection: AbstractRobustConnection, names: Names) -> None:
        self._names = names
        self._channel = ConfirmingChannel(connection)
        self.published = 0
        self._in_flight: dict[str, asyncio.Event] = {}

    async def open(self) -> None:
        await self._channel.open()

    async def close(self) -> None:
        await self._channel.close()

    async def _send(
        self, underlay: aiormq.Channel, message: Publication
    ) -> PublishNotConfirmed | None:
        """Publish one message and wait for its confirm; the failure is returned."""
        try:
            await publish_confirmed(underlay, message)
        except PublishNotConfirmed as exc:
            return exc
        return None

    async def _request(
        self, underlay: aiormq.Channel, request: OutgoingRequest
    ) -> PublishNotConfirmed | None:
        message_id = request.message_id
        properties = Basic.Properties(
            headers=request.headers,
            content_type="application/json",
            message_id=message_id,
            delivery_mode=_PERSISTENT,
            timestamp=datetime.now(UTC),
        )
        message = Publication(
            self._names.exchange, REQUEST_ROUTING_KEY, request.body, properties, mandatory=True
        )
        if message_id is None:
            error = await self._send(underlay, message)
        else:
            while (other := self._in_flight.get(message_id)) is not None:
                await other.wait()
            settled = self._in_flight[message_id] = asyncio.Event()
            try:
                error = await self._send(underlay, message)
            finally:
                del self._in_flight[message_id]
                settled.set()
        if error is None:
            self.published += 1
        return error

    async def publish_requests(
        self, requests: Sequence[OutgoingRequest]
    ) -> list[PublishNotConfirmed | None]:
        if not requests:
            return []
        try:
            underlay = await self._channel.underlay(_CONFIRM_TIMEOUT)
        except PublishNotConfirmed as exc:
            return [exc] * len(requests)
        return await _within_deadline([self._request(underlay, r) for r in requests])

    async def publish_request(
        self, body: bytes, headers: dict[str, Any], message_id: str | None
    ) -> None:
        [error] = await self.publish_requests([OutgoingRequest(body, headers, message_id)])
        if error is not None:
            raise error

    async def publish_events(
        self, events: Sequence[tuple[str, dict[str, Any]]]
    ) -> list[PublishNotConfirmed]:
        if not events:
            return []
        try:
            underlay = await self._channel.underlay(_CONFIRM_TIMEOUT)
        except PublishNotConfirmed as exc:
            return [exc] * len(events)
        exchange = self._names.events
        outcomes = await _within_deadline(
            [
                self._send(
                    underlay,
                    Publication(
                        exchange,
                        routing_key,
                        orjson.dumps(body),
                        Basic.Properties(
                            content_type="application/json", delivery_mode=_PERSISTENT
                        ),
                        mandatory=False,
                    ),
                )
                for routing_key, body in events
            ]
        )
        return [error for error in outcomes if error is not None]

    async def publish_event(self, routing_key: str, body: dict[str, Any]) -> None:
        errors = await self.publish_events([(routing_key, body)])
        if errors:
            raise errors[0]

    async def publish_reply(
        self, reply_to: str, correlation_id: str | None, body: dict[str, Any]
    ) -> None:
        """Best effort: answer a caller that may still wait on ``reply_to`` (a settled
        payment); a caller that has gone leaves no queue, and the broker drops the reply."""
        underlay = await self._channel.underlay(_CONFIRM_TIMEOUT)
        properties = Basic.Properties(
            content_type="application/json",
            delivery_mode=_PERSISTENT,
            correlation_id=correlation_id,
        )
        [error] = await _within_deadline(
            [self._send(underlay, Publication("", reply_to, orjson.dumps(body), properties, False))]
        )
        if error is not None:
            raise error


async def _within_deadline(
    sends: list[Coroutine[Any, Any, PublishNotConfirmed | None]],
) -> list[PublishNotConfirmed | None]:
    """Run publishes concurrently under one deadline for the whole batch (one timer, not one
    per message). A publish still unconfirmed at the deadline is cancelled and counts as
    failed, like a per-message timeout."""
    tasks = [asyncio.ensure_future(send) for send in sends]
    try:
        _, pending = await asyncio.wait(tasks, timeout=_CONFIRM_TIMEOUT)
    except BaseException:
        for task in tasks:
            task.cancel()
        raise
    if pending:
        for task in pending:
            task.cancel()
        await asyncio.wait(pending)
    late = PublishNotConfirmed(f"TimeoutError: no confirm within {_CONFIRM_TIMEOUT:g} s")
    return [late if task.cancelled() else task.result() for task in tasks]


class AmqpQueueProbe:
    """How many messages wait in ``N.dlq`` (a passive declare on a throw-away channel)."""

    def __init__(self, connection: AbstractRobustConnection, queue_name: str) -> None:
        self._connection = connection
        self._queue_name = queue_name

    async def waiting(self) -> int | None:
        try:
            channel = await asyncio.wait_for(self._connection.channel(), 5)
        except _PUBLISH_OR_MISSING:
            return None
        try:
            declared = await asyncio.wait_for(
                channel.declare_queue(self._queue_name, passive=True), 5
            )
            count = declared.declaration_result.message_count
            return int(count) if count is not None else None
        except _PUBLISH_OR_MISSING:
            return None
        finally:
            if not channel.is_closed:
                with contextlib.suppress(*PUBLISH_ERRORS):
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
            with contextlib.suppress(*PUBLISH_ERRORS):
                await self._queue.cancel(tag)
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=10)
        if self._channel is not None and not self._channel.is_closed:
            with contextlib.suppress(*PUBLISH_ERRORS):
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
        except PUBLISH_ERRORS as exc:
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
