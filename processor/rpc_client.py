"""Charge a payment and wait for its result: RabbitMQ request/reply over ``reply_to``.

``await client.charge(request, timeout=5)`` validates the request, publishes it to
``N``/``payment.request`` (mandatory, confirmed, persistent, ``message_id = payment_id``) with
``reply_to`` set to this client's exclusive reply queue and a fresh ``correlation_id``, and
returns the worker's answer as a ``PaymentResult``. The request travels the asynchronous path
unchanged: retries, the DLQ and idempotency on ``payment_id`` all apply, and retry copies
carry ``reply_to``, so the answer arrives whenever the payment becomes final.

The worker replies with *final* results (``succeeded``, ``declined``, ``dead_lettered``),
also to duplicates of an already final payment; ``retry_scheduled`` produces an event, never a
reply. A ``dead_lettered`` result is returned, not raised: the payment was processed and
parked for an operator, and ``result.error`` says why. An ``unknown`` reply (the gateway's
answer was lost and it cannot say yet whether it charged) is not an answer: the call keeps
waiting, and either the settled result (sent by the reconciler) or ``ChargeTimeout`` ends it,
so an unknown outcome is never reported as a failure.

Many concurrent calls share one connection, one channel and one reply queue; replies are
matched by ``correlation_id``. A reply nobody waits for any more (its call timed out) or with
an unknown ``correlation_id`` is dropped without error.

Errors::

    RpcError
     +-- InvalidRequest     the request breaks the schema; nothing was published
     +-- NotAccepted        the broker did not take the request; nothing will be charged
     |                      unless the broker took it after all (retrying is always safe)
     +-- ChargeTimeout      no final answer in time; the payment goes on in the background
     |                      (also a ``TimeoutError``)
     +-- ClientClosed       the client was closed while the call waited
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
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
from pydantic import ValidationError

from processor.decode import Invalid, validate_payload
from processor.errors import ProcessorError
from retry.names import REQUEST_ROUTING_KEY, Names
from schemas.outcome import ErrorInfo, PaymentResult
from schemas.payment import PaymentRequest

log = logging.getLogger("payproc.rpc")


class RpcError(ProcessorError):
    """Base of every error ``RpcClient`` raises."""


class InvalidRequest(RpcError):
    """The request breaks the payment schema; ``error.message`` names the field(s)."""

    def __init__(self, error: ErrorInfo) -> None:
        super().__init__(error.message)
        self.error = error


class NotAccepted(RpcError):
    """The broker refused the request or the connection failed while publishing it."""


class ChargeTimeout(RpcError, TimeoutError):
    """No final result before the timeout; the payment continues in the background."""

    def __init__(self, payment_id: str, timeout: float) -> None:
        super().__init__(
            f"payment {payment_id}: no final result within {timeout:g}s; it continues in the "
            "background and its state can be queried by payment_id"
        )
        self.payment_id = payment_id
        self.timeout = timeout


class ClientClosed(RpcError):
    """The client was closed while the call was waiting for its reply."""


@dataclass
class RpcStats:
    sent: int = 0
    replied: int = 0
    timeouts: int = 0
    dropped: int = 0
    """Replies with an unknown or expired ``correlation_id`` (late replies included)."""
    pending: int = 0
    """``unknown`` replies: the outcome is not settled yet and the call kept waiting."""


UnmatchedListener = Callable[[AbstractIncomingMessage], None]


@dataclass(frozen=True, slots=True)
class _Call:
    payment_id: str
    future: asyncio.Future[PaymentResult]


def to_request(request: PaymentRequest | Mapping[str, Any]) -> PaymentRequest:
    """Validate a mapping with the worker's own rules; raise ``InvalidRequest``."""
    if isinstance(request, PaymentRequest):
        return request
    decoded = validate_payload(dict(request))
    if isinstance(decoded, Invalid):
        raise InvalidRequest(decoded.error)
    return decoded


class RpcClient:
    """Synchronous charges over one connection and one exclusive reply queue.

    Use ``await RpcClient.connect(url, namespace)`` (the client owns the connection) or pass
    an existing robust connection and call ``open()``. The reply queue is named
    ``N.rpc.<random>``; after a reconnect it is declared again under the same name, and
    replies sent while the connection was down are lost: those calls end in
    ``ChargeTimeout`` and their payments still complete.
    """

    def __init__(
        self,
        connection: AbstractRobustConnection,
        names: Names,
        *,
        owns_connection: bool = False,
        on_unmatched: UnmatchedListener | None = None,
    ) -> None:
        self._connection = connection
        self._names = names
        self._owns_connection = owns_connection
        self._on_unmatched = on_unmatched
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._queue: AbstractQueue | None = None
        self._calls: dict[str, _Call] = {}
        self._reply_queue = f"{names.namespace}.rpc.{uuid.uuid4().hex}"
        self.stats = RpcStats()

    @classmethod
    async def connect(
        cls,
        amqp_url: str,
        namespace: str,
        *,
        on_unmatched: UnmatchedListener | None = None,
    ) -> RpcClient:
        connection = await aio_pika.connect_robust(
            amqp_url,
            client_properties={"connection_name": f"payproc-rpc {namespace}"},
            reconnect_interval=1.0,
        )
        client = cls(connection, Names(namespace), owns_connection=True, on_unmatched=on_unmatched)
        try:
            await client.open()
        except BaseException:
            await connection.close()
            raise
        return client

    @property
    def connection(self) -> AbstractRobustConnection:
        return self._connection

    @property
    def reply_queue(self) -> str:
        """The name every request of this client carries in ``reply_to``."""
        return self._reply_queue

    @property
    def in_flight(self) -> int:
        return len(self._calls)

    async def open(self) -> None:
        channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        self._channel = channel
        self._exchange = await channel.get_exchange(self._names.exchange, ensure=False)
        # Exclusive and auto-delete: the queue lives exactly as long as this client's
        # connection, and classic (the only kind that can be exclusive).
        self._queue = await channel.declare_queue(
            self._reply_queue, durable=False, exclusive=True, auto_delete=True
        )
        await self._queue.consume(self._on_reply, no_ack=True)

    async def close(self) -> None:
        calls, self._calls = self._calls, {}
        for call in calls.values():
            if not call.future.done():
                call.future.set_exception(ClientClosed("the RPC client was closed"))
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()
        if self._owns_connection:
            await self._connection.close()

    async def __aenter__(self) -> RpcClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def charge(
        self,
        request: PaymentRequest | Mapping[str, Any],
        *,
        timeout: float,  # noqa: ASYNC109 - the call's deadline, part of the public API
    ) -> PaymentResult:
        """Charge once per ``payment_id`` and return its final result within ``timeout`` s."""
        if not timeout > 0:
            raise ValueError(f"timeout must be positive seconds, got {timeout!r}")
        payment = to_request(request)
        if self._exchange is None:
            raise ClientClosed("the RPC client is not open")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        payment_id = payment.key
        correlation_id = uuid.uuid4().hex
        future: asyncio.Future[PaymentResult] = loop.create_future()
        # Registered before publishing: a fast reply must find its caller.
        self._calls[correlation_id] = _Call(payment_id, future)
        try:
            await self._publish(payment, correlation_id, timeout)
            self.stats.sent += 1
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            return await asyncio.wait_for(future, remaining)
        except TimeoutError:
            self.stats.timeouts += 1
            raise ChargeTimeout(payment_id, timeout) from None
        finally:
            self._calls.pop(correlation_id, None)
            if not future.done():
                future.cancel()

    async def _publish(
        self,
        payment: PaymentRequest,
        correlation_id: str,
        timeout: float,  # noqa: ASYNC109 - passed on to aio-pika's confirm wait
    ) -> None:
        assert self._exchange is not None
        message = aio_pika.Message(
            orjson.dumps(payment.to_message()),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=payment.key,
            correlation_id=correlation_id,
            reply_to=self._reply_queue,
        )
        try:
            await self._exchange.publish(
                message, REQUEST_ROUTING_KEY, mandatory=True, timeout=timeout
            )
        except DeliveryError as exc:
            # Returned (no queue bound: is the topology declared?) or nacked by the broker.
            raise NotAccepted(
                f"payment {payment.key}: the broker did not accept the request ({exc})"[:300]
            ) from exc
        except (AMQPError, ChannelInvalidStateError, ConnectionError, RuntimeError) as exc:
            raise NotAccepted(
                f"payment {payment.key}: publishing failed ({type(exc).__name__}: {exc}); "
                "charging again with the same payment_id is safe"[:300]
            ) from exc

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        call = self._calls.get(message.correlation_id or "")
        if call is None or call.future.done():
            self.stats.dropped += 1
            log.debug(
                "dropping a late or unknown reply", extra={"correlation_id": message.correlation_id}
            )
            if self._on_unmatched is not None:
                self._on_unmatched(message)
            return
        try:
            result = PaymentResult.model_validate_json(message.body)
        except ValidationError as exc:
            log.warning(
                "unreadable reply",
                extra={"payment_id": call.payment_id, "error": str(exc)[:200]},
            )
            call.future.set_exception(RpcError(f"payment {call.payment_id}: unreadable reply"))
            return
        if result.payment_id != call.payment_id:
            self.stats.dropped += 1
            log.warning(
                "ignoring a reply about another payment",
                extra={"payment_id": call.payment_id, "reply_payment_id": result.payment_id},
            )
            return
        if not result.status.is_final:
            # Expected, not a fault: the settled result follows, or the call times out.
            self.stats.pending += 1
            log.info(
                "payment outcome unknown for now (the gateway cannot say yet whether it "
                "charged): still waiting for the settled result",
                extra={"payment_id": call.payment_id, "status": result.status.value},
            )
            return
        self.stats.replied += 1
        call.future.set_result(result)
