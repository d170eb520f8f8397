"""The worker's ``Publisher`` port over aio-pika: retry copies, DLQ copies, events, replies.

Every publish goes through ``retry.confirmed_publish`` and its confirm is awaited. Retry and
DLQ publishes are ``mandatory``: an unroutable publish is still *confirmed* by RabbitMQ, so
without ``mandatory`` a missing queue would silently drop a payment. Events and replies are
not mandatory: nobody has to listen to events, and a caller's reply queue may be gone;
neither may block the ack of a payment. A publish that is not confirmed raises the port's
``PublishFailed``, and the consumer returns the message to its queue.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractRobustConnection
from pamqp.commands import Basic
from pamqp.common import FieldValue

from processor.envelope import Envelope
from processor.errors import PublishFailed
from processor.ports import ParkNotice
from retry.confirmed_publish import ConfirmingChannel, Publication
from retry.errors import PublishNotConfirmed
from retry.names import DEAD_ROUTING_KEY, Names
from schemas import headers as h
from schemas.cards import contains_card_number, redact_card_numbers
from schemas.outcome import ParkReason, PaymentResult, RetryScheduled

ORIGIN = f"{socket.gethostname()}:{os.getpid()}"

_PERSISTENT = int(aio_pika.DeliveryMode.PERSISTENT)

_CONFIRM_TIMEOUT = 30.0
_BROKER_HEADERS = ("x-death", "x-delivery-count", "x-first-death", "x-last-death")
_PARK_HEADERS = frozenset(
    {
        h.REASON,
        h.ERROR_CODE,
        h.ERROR_MESSAGE,
        h.ATTEMPTS,
        h.PARKED_AT,
        h.ORIGIN,
        h.HTTP_STATUS,
        h.EXCEPTION_TYPE,
        h.PARK_ID,
    }
)


def carried_headers(headers: Mapping[str, Any]) -> dict[str, FieldValue]:
    """Headers worth keeping on a republished copy: ours and the producer's, minus the
    broker's ``x-death`` bookkeeping (it grows with every cycle and can trigger cycle drops)."""
    return {
        key: value
        for key, value in headers.items()
        if not key.startswith(_BROKER_HEADERS) and key not in _PARK_HEADERS
    }


def _short(text: str) -> str:
    return redact_card_numbers(text)[: h.MAX_HEADER_TEXT]


def parked_body(envelope: Envelope, reason: ParkReason) -> bytes:
    """The body to park: invalid bodies have card-number look-alikes masked first."""
    if reason is not ParkReason.INVALID_MESSAGE:
        return envelope.body
    text = envelope.body.decode("utf-8", "replace")
    if contains_card_number(text):
        return redact_card_numbers(text).encode()
    return envelope.body


class AmqpPublisher:
    """Publishes on a dedicated confirming channel of a robust connection."""

    def __init__(self, connection: AbstractRobustConnection, names: Names) -> None:
        self._names = names
        self._channel = ConfirmingChannel(connection)

    async def open(self) -> None:
        await self._channel.open()

    async def close(self) -> None:
        await self._channel.close()

    async def _send(
        self, exchange: str, message: aio_pika.Message, routing_key: str, *, mandatory: bool
    ) -> None:
        await self._publish(
            Publication(exchange, routing_key, message.body, message.properties, mandatory)
        )

    async def _send_properties(
        self, exchange: str, body: bytes, properties: Basic.Properties, routing_key: str
    ) -> None:
        """Publish an event or a reply (not mandatory) from ready-made properties: building
        an ``aio_pika.Message`` for every payment's event and reply costs CPU on the hot path,
        and these two need none of its conveniences."""
        await self._publish(Publication(exchange, routing_key, body, properties, mandatory=False))

    async def _publish(self, message: Publication) -> None:
        """Publish and wait for the broker's confirm; ``PublishFailed`` names the queue."""
        try:
            await self._channel.publish(message, confirm_timeout=_CONFIRM_TIMEOUT)
        except PublishNotConfirmed as exc:
            raise PublishFailed(f"{message.routing_key}: {exc}"[:300]) from exc

    def _copy(
        self, envelope: Envelope, headers: dict[str, FieldValue], body: bytes
    ) -> aio_pika.Message:
        return aio_pika.Message(
            body,
            headers=headers,
            content_type=envelope.content_type,
            reply_to=envelope.reply_to,
            correlation_id=envelope.correlation_id,
            message_id=envelope.message_id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            timestamp=datetime.now(UTC),
        )

    async def schedule_retry(
        self,
        envelope: Envelope,
        delay: float,
        attempt: int,
        deferred: bool = False,
        in_doubt: bool = False,
    ) -> None:
        headers = carried_headers(envelope.headers)
        headers[h.ATTEMPT] = attempt
        if in_doubt:
            headers[h.IN_DOUBT] = 1
        if deferred:
            headers[h.DEFERRED] = envelope.deferrals + 1
        message = self._copy(envelope, headers, envelope.body)
        await self._send("", message, self._names.retry_queue(delay), mandatory=True)

    async def park(self, envelope: Envelope, notice: ParkNotice) -> None:
        headers = carried_headers(envelope.headers)
        headers.update(
            {
                h.PARK_ID: _short(notice.park_id or str(uuid.uuid4())),
                h.REASON: notice.reason.value,
                h.ERROR_CODE: _short(notice.error.code),
                h.ERROR_MESSAGE: _short(notice.error.message),
                h.ATTEMPTS: notice.attempts,
                h.PARKED_AT: datetime.now(UTC).isoformat(),
                h.ORIGIN: ORIGIN,
            }
        )
        if notice.payment_id:
            headers[h.PAYMENT_ID] = _short(notice.payment_id)
        if notice.merchant_id:
            headers[h.MERCHANT_ID] = _short(notice.merchant_id)
        if notice.http_status is not None:
            headers[h.HTTP_STATUS] = notice.http_status
        if notice.exception_type:
            headers[h.EXCEPTION_TYPE] = _short(notice.exception_type)
        message = self._copy(envelope, headers, parked_body(envelope, notice.reason))
        await self._send(self._names.dlx, message, DEAD_ROUTING_KEY, mandatory=True)

    async def publish_event(
        self,
        event: PaymentResult | RetryScheduled,
        routing_key: str,
        traceparent: str | None = None,
    ) -> None:
        properties = Basic.Properties(
            content_type="application/json",
            delivery_mode=_PERSISTENT,
            message_id=f"{event.payment_id}:{routing_key}:{event.attempts}",
            headers={h.TRACEPARENT: traceparent} if traceparent else None,
        )
        body = orjson.dumps(event.model_dump(mode="json"))
        await self._send_properties(self._names.events, body, properties, routing_key)

    async def reply(self, envelope: Envelope, result: PaymentResult) -> None:
        if not envelope.reply_to:
            return
        traceparent = envelope.traceparent
        properties = Basic.Properties(
            content_type="application/json",
            delivery_mode=_PERSISTENT,
            correlation_id=envelope.correlation_id,
            headers={h.TRACEPARENT: traceparent} if traceparent else None,
        )
        body = orjson.dumps(result.model_dump(mode="json"))
        await self._send_properties("", body, properties, envelope.reply_to)
