"""Declare the exchanges and queues of one namespace (idempotent: each start declares them).

Why the arguments are what they are (RabbitMQ 3.10):

* per-message TTL only expires at the head of a queue, so each delay gets its own queue with a
  queue-level ``x-message-ttl`` (as Dramatiq's RabbitMQ broker does for its delay queues);
* quorum queues dead-letter at-least-once only with ``x-dead-letter-strategy: at-least-once``
  *and* ``x-overflow: reject-publish``; classic queues dead-letter at-most-once;
* quorum queues have no delivery limit unless ``x-delivery-limit`` is set, and without one a
  message that crashes its worker loops forever;
* the DLQ has neither TTL nor length limit: nothing parked expires silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from aiormq.exceptions import ChannelPreconditionFailed

from retry.errors import TopologyConflict
from retry.names import DEAD_ROUTING_KEY, REQUEST_ROUTING_KEY, Names


def quorum_arguments(
    *,
    dead_letter_exchange: str | None = None,
    dead_letter_routing_key: str | None = None,
    message_ttl_ms: int | None = None,
    delivery_limit: int | None = None,
) -> dict[str, str | int]:
    args: dict[str, str | int] = {"x-queue-type": "quorum"}
    if dead_letter_exchange is not None:
        args["x-dead-letter-exchange"] = dead_letter_exchange
        args["x-dead-letter-strategy"] = "at-least-once"
        args["x-overflow"] = "reject-publish"
    if dead_letter_routing_key is not None:
        args["x-dead-letter-routing-key"] = dead_letter_routing_key
    if message_ttl_ms is not None:
        args["x-message-ttl"] = message_ttl_ms
    if delivery_limit is not None:
        args["x-delivery-limit"] = delivery_limit
    return args


@dataclass(frozen=True, slots=True)
class DeclaredQueue:
    name: str
    arguments: dict[str, str | int]
    bound_to: str


def dlq_queue(names: Names) -> DeclaredQueue:
    """``N.dlq``: bound to the fanout ``N.dlx``, without TTL or length limit."""
    return DeclaredQueue(names.dlq, quorum_arguments(), f"{names.dlx} (fanout)")


def planned_queues(
    names: Names, delays: Sequence[float], delivery_limit: int
) -> list[DeclaredQueue]:
    """Every queue of the namespace with its arguments (pure; printed by ``payproc topology``)."""
    queues = [
        DeclaredQueue(
            names.requests,
            quorum_arguments(
                dead_letter_exchange=names.dlx,
                dead_letter_routing_key=DEAD_ROUTING_KEY,
                delivery_limit=delivery_limit,
            ),
            f"{names.exchange} ({REQUEST_ROUTING_KEY})",
        ),
        dlq_queue(names),
    ]
    for delay in delays:
        queues.append(
            DeclaredQueue(
                names.retry_queue(delay),
                quorum_arguments(
                    dead_letter_exchange=names.exchange,
                    dead_letter_routing_key=REQUEST_ROUTING_KEY,
                    message_ttl_ms=max(round(delay * 1000), 1),
                ),
                "default exchange",
            )
        )
    return queues


async def declare_topology(
    connection: AbstractRobustConnection,
    names: Names,
    delays: Sequence[float],
    delivery_limit: int,
) -> list[DeclaredQueue]:
    """Declare everything; raise ``TopologyConflict`` naming the object on a mismatch."""
    queues = planned_queues(names, delays, delivery_limit)
    await _declare_on_a_channel(connection, names, queues)
    return queues


async def declare_dlq_topology(connection: AbstractRobustConnection, names: Names) -> None:
    """Declare what the DLQ admin itself needs, with the arguments the workers use: the three
    exchanges (replays go to ``N``, events to ``N.events``) and ``N.dlx`` -> ``N.dlq``.
    Idempotent; ``TopologyConflict`` naming the object on a mismatch."""
    await _declare_on_a_channel(connection, names, [dlq_queue(names)])


async def _declare_on_a_channel(
    connection: AbstractRobustConnection, names: Names, queues: Sequence[DeclaredQueue]
) -> None:
    channel = await connection.channel()
    try:
        await _declare(channel, names, queues)
    finally:
        if not channel.is_closed:
            await channel.close()


async def _declare(channel: AbstractChannel, names: Names, queues: Sequence[DeclaredQueue]) -> None:
    current = ""
    try:
        current = f"exchange {names.exchange}"
        exchange = await channel.declare_exchange(
            names.exchange, aio_pika.ExchangeType.DIRECT, durable=True
        )
        current = f"exchange {names.dlx}"
        dlx = await channel.declare_exchange(names.dlx, aio_pika.ExchangeType.FANOUT, durable=True)
        current = f"exchange {names.events}"
        await channel.declare_exchange(names.events, aio_pika.ExchangeType.TOPIC, durable=True)
        for queue in queues:
            current = f"queue {queue.name}"
            declared = await channel.declare_queue(
                queue.name, durable=True, arguments=dict(queue.arguments)
            )
            if queue.name == names.requests:
                await declared.bind(exchange, REQUEST_ROUTING_KEY)
            elif queue.name == names.dlq:
                await declared.bind(dlx, "")
    except ChannelPreconditionFailed as exc:
        raise TopologyConflict(
            f"{current} already exists with different settings ({exc}); delete it or use "
            "another PAYPROC_NAMESPACE"
        ) from exc


async def delete_topology(
    connection: AbstractRobustConnection, names: Names, delays: Sequence[float]
) -> None:
    """Remove every queue and exchange of a namespace (tests and demos clean up with this)."""
    channel = await connection.channel()
    try:
        for queue in [names.requests, names.dlq, *(names.retry_queue(d) for d in delays)]:
            await channel.queue_delete(queue)
        for exchange in [names.exchange, names.dlx, names.events]:
            await channel.exchange_delete(exchange)
    finally:
        if not channel.is_closed:
            await channel.close()
