"""Confirmed publishing over aio-pika: the one way the worker and the DLQ admin publish what
must not be lost (retry copies, DLQ copies, replays), and their events and replies too.

* The channel confirms (``publisher_confirms``) and its returns raise (``on_return_raises``):
  RabbitMQ *confirms* an unroutable publish, so only ``mandatory`` (the broker returns what
  no queue took) on such a channel tells a missing queue from a delivered message.
* ``wait=False``: aiormq otherwise holds the channel's lock until the writer task has written
  *and drained* each frame, so concurrent publishes queue up behind each other a loop turn or
  two apiece. The broker's confirm (or a return, which raises) is what makes a publish safe,
  and it is still awaited; concurrent publishes overlap their confirms.
* aiormq matches a ``basic.return`` to its publish by ``message_id``: a caller that may have
  two messages with one ``message_id`` in flight must keep them apart (the admin does).
* Every failure (a return, a nack, a timeout, a closed channel or connection) is raised as
  one error, ``PublishNotConfirmed``: whatever the publish stood for has not happened.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiormq
from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError, DeliveryError
from pamqp.commands import Basic

from retry.errors import PublishNotConfirmed

PUBLISH_ERRORS: tuple[type[BaseException], ...] = (
    TimeoutError,
    DeliveryError,
    AMQPError,
    ChannelInvalidStateError,
    ConnectionError,
    RuntimeError,
)
"""What a publish raises when the broker or the connection let it down (never a bug)."""


def not_confirmed(exc: BaseException) -> PublishNotConfirmed:
    """The one error a failed publish becomes: ``"<ExceptionType>: <message>"``, bounded."""
    return PublishNotConfirmed(f"{type(exc).__name__}: {exc}"[:300])


@dataclass(frozen=True, slots=True)
class Publication:
    """One message to publish: where to, what, and whether a missing queue is an error
    (``mandatory``: the broker returns what no queue took, and the publish fails)."""

    exchange: str
    routing_key: str
    body: bytes
    properties: Basic.Properties
    mandatory: bool


async def publish_confirmed(
    channel: aiormq.Channel, message: Publication, *, confirm_timeout: float | None = None
) -> None:
    """Publish one message on ``channel`` and wait for its confirm (and, when ``mandatory``,
    for the absence of a return); ``PublishNotConfirmed`` otherwise."""
    try:
        await channel.basic_publish(
            message.body,
            exchange=message.exchange,
            routing_key=message.routing_key,
            properties=message.properties,
            mandatory=message.mandatory,
            timeout=confirm_timeout,
            wait=False,
        )
    except PUBLISH_ERRORS as exc:
        raise not_confirmed(exc) from exc


class ConfirmingChannel:
    """A dedicated confirming channel, whose returns raise, on a robust connection."""

    def __init__(self, connection: AbstractRobustConnection) -> None:
        self._connection = connection
        self._channel: AbstractChannel | None = None

    async def open(self) -> None:
        self._channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )

    async def close(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()

    async def underlay(self, reconnect_timeout: float | None = None) -> aiormq.Channel:
        """The open aiormq channel to publish on. A robust channel that is reconnecting is
        waited for, for at most ``reconnect_timeout`` seconds when given; ``PublishNotConfirmed`` if
        the channel is not open, closed, or does not come back in time."""
        channel = self._channel
        if channel is None:
            raise PublishNotConfirmed("the publisher is not open")
        try:
            async with asyncio.timeout(reconnect_timeout):
                if channel.is_closed:
                    raise ChannelInvalidStateError("the publishing channel is closed")
                underlay = await channel.get_underlay_channel()
        except PUBLISH_ERRORS as exc:
            raise not_confirmed(exc) from exc
        if not isinstance(underlay, aiormq.Channel):  # pragma: no cover - aio-pika wraps aiormq
            raise PublishNotConfirmed(f"unexpected channel type {type(underlay).__name__}")
        return underlay

    async def publish(self, message: Publication, *, confirm_timeout: float | None = None) -> None:
        """``publish_confirmed`` on this channel (``confirm_timeout`` bounds the wait)."""
        await publish_confirmed(await self.underlay(), message, confirm_timeout=confirm_timeout)


__all__ = [
    "PUBLISH_ERRORS",
    "ConfirmingChannel",
    "Publication",
    "PublishNotConfirmed",
    "not_confirmed",
    "publish_confirmed",
]
