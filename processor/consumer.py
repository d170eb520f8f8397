"""The AMQP consumer: decode -> use case -> settle. Nothing else lives here.

Ack/nack is decided explicitly in one place (``_settle``) instead of aio-pika's
``message.process()``, which rejects with ``requeue=False`` on *any* exception, including the
``CancelledError`` of a shutdown: that would dead-letter healthy payments.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aio_pika.abc import AbstractIncomingMessage
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError

from processor.acks import AckCoalescer
from processor.adapters.amqp_publisher import ORIGIN
from processor.decode import Invalid, decode_request
from processor.envelope import Envelope
from processor.errors import PublishFailed, StoreUnavailable
from processor.handled import Handled, Outcome
from processor.tracing import is_valid, new_traceparent
from processor.use_cases import Deps, park_invalid, park_poison, process_payment
from schemas.headers import TRACEPARENT
from schemas.payment import PaymentRequest

log = logging.getLogger("payproc.worker")


def envelope_from(message: AbstractIncomingMessage) -> Envelope:
    headers = dict(message.headers or {})
    if not is_valid(headers.get(TRACEPARENT)):
        # Start the trace here: retry copies, DLQ entries and replays carry it from now on.
        headers[TRACEPARENT] = new_traceparent()
    return Envelope(
        body=message.body,
        headers=headers,
        content_type=message.content_type,
        reply_to=message.reply_to,
        correlation_id=message.correlation_id,
        message_id=message.message_id,
    )


@dataclass
class ConsumerStats:
    outcomes: dict[Outcome, int] = field(default_factory=dict)
    gateway_calls: int = 0
    requeued: int = 0
    stale_acks: int = 0

    def count(self, handled: Handled) -> None:
        self.outcomes[handled.outcome] = self.outcomes.get(handled.outcome, 0) + 1
        if handled.gateway_called:
            self.gateway_calls += 1


OutcomeListener = Callable[[Handled, float], None]


class PaymentConsumer:
    def __init__(
        self,
        deps: Deps,
        poison_threshold: int,
        on_outcome: OutcomeListener | None = None,
    ) -> None:
        self._deps = deps
        self._poison_threshold = poison_threshold
        self._on_outcome = on_outcome
        self.stats = ConsumerStats()
        self.in_flight: set[asyncio.Task[None]] = set()
        self.acks = AckCoalescer()
        # Lease owner of each handling: unique per process start and per message (cheaper
        # than a uuid4 per message).
        self._owner_prefix = f"{ORIGIN}:{secrets.token_hex(4)}:"
        self._handled = itertools.count(1)

    async def handle(self, message: AbstractIncomingMessage) -> None:
        self.acks.delivered(message)
        task = asyncio.current_task()
        if task is not None:
            self.in_flight.add(task)
        try:
            await self._handle(message)
        finally:
            if task is not None:
                self.in_flight.discard(task)

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        started = time.perf_counter()
        envelope = envelope_from(message)
        owner = f"{self._owner_prefix}{next(self._handled)}"
        decoded = decode_request(envelope.body, envelope.content_type)
        request = decoded if isinstance(decoded, PaymentRequest) else None
        try:
            if isinstance(decoded, Invalid):
                handled = await park_invalid(envelope, decoded.error, self._deps, decoded)
            else:
                handled = await process_payment(decoded, envelope, owner, self._deps)
        except asyncio.CancelledError:
            # Shutdown: give the message back, never dead-letter it.
            await self._settle(message, requeue=True)
            raise
        except (StoreUnavailable, PublishFailed) as exc:
            log.warning(
                "infrastructure unavailable, message returned to the queue",
                extra={"payment_id": request.key if request else None, "error": str(exc)},
            )
            await self._settle(message, requeue=True)
            return
        except Exception as exc:
            if request is not None:
                with contextlib.suppress(Exception):
                    await self._deps.store.release(request.key, owner)
            await self._crashed(message, envelope, request, exc)
            return
        await self._settle(message, requeue=None)
        self.stats.count(handled)
        if self._on_outcome is not None:
            self._on_outcome(handled, time.perf_counter() - started)
        log.debug(
            "payment handled",
            extra={
                "payment_id": request.key if request else None,
                "attempt": envelope.attempt + (1 if handled.gateway_called else 0),
                "outcome": handled.outcome.value,
                "delay": handled.delay,
                "park_reason": handled.park_reason.value if handled.park_reason else None,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            },
        )

    async def _crashed(
        self,
        message: AbstractIncomingMessage,
        envelope: Envelope,
        request: PaymentRequest | None,
        exc: Exception,
    ) -> None:
        deliveries = envelope.delivery_count + 1
        log.error(
            "processing crashed",
            extra={
                "payment_id": request.key if request else None,
                "deliveries": deliveries,
                "error": f"{type(exc).__name__}: {exc}"[:300],
            },
        )
        if deliveries < self._poison_threshold:
            await self._settle(message, requeue=True)
            return
        try:
            handled = await park_poison(request, envelope, exc, self._deps)
        except Exception:
            log.exception("could not park a poison message; returning it to the queue")
            await self._settle(message, requeue=True)
            return
        self.stats.count(handled)
        await self._settle(message, requeue=None)

    async def _settle(self, message: AbstractIncomingMessage, requeue: bool | None) -> None:
        """Ack (``requeue=None``) or return the message; a stale channel is not an error."""
        try:
            if requeue is None:
                await self.acks.ack(message)
            else:
                self.stats.requeued += 1
                await self.acks.nack(message, requeue=True)
        except (ChannelInvalidStateError, AMQPError, ConnectionError, RuntimeError) as exc:
            # Received before a reconnect: the broker has already re-queued it and will
            # deliver it again; the store makes that redelivery harmless.
            self.stats.stale_acks += 1
            log.warning("could not settle a message on a closed channel: %s", exc)
