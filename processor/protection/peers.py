"""Count the live workers of a namespace through the broker, with nothing new to run.

Every worker holds one consumer on the namespace's ``<ns>.gateway.peers`` queue (classic,
auto-delete, never published to). The queue's consumer count is the number of live workers:
a worker that dies loses its connection and with it its consumer, a worker that starts adds
one. Each worker re-declares the queue every ``interval`` seconds (an idempotent declare
answers with the consumer count) and tells ``on_count``, which re-balances its rate share.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

log = logging.getLogger("payproc.worker")


def peers_queue(namespace: str) -> str:
    return f"{namespace}.gateway.peers"


class PeerCounter:
    def __init__(
        self,
        connection: AbstractRobustConnection,
        namespace: str,
        on_count: Callable[[int], None],
        interval: float = 0.25,
    ) -> None:
        self._connection = connection
        self._name = peers_queue(namespace)
        self._on_count = on_count
        self._interval = interval
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        channel = await self._connection.channel()
        self._channel = channel
        queue = await channel.declare_queue(
            self._name, durable=False, auto_delete=True, arguments={"x-queue-type": "classic"}
        )
        self._queue = queue
        await queue.consume(_ignore, no_ack=True)
        await self._count()
        self._task = asyncio.create_task(self._poll(), name="payproc-peer-counter")

    async def _count(self) -> None:
        assert self._queue is not None
        result = await self._queue.declare()
        self._on_count(max(int(result.consumer_count or 0), 1))

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self._count()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the robust connection is reconnecting: keep the share
                log.debug("could not count peers: %s", exc)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._channel is not None:
            with contextlib.suppress(Exception):
                await self._channel.close()


async def _ignore(message: AbstractIncomingMessage) -> None:
    """Nothing is published to the peers queue; a stray message is dropped."""
