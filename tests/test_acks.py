"""Coalesced acks on the real broker: fewer frames, and never an ack for unfinished work."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from processor.acks import AckCoalescer

COUNT = 50


@pytest.fixture
async def queue_name(connection: AbstractRobustConnection) -> AsyncIterator[str]:
    name = f"acks-{uuid.uuid4().hex[:10]}"
    channel = await connection.channel()
    # A classic queue: a quorum queue of RabbitMQ 3.10 may return messages whose acks were
    # sent just before the channel closed (settles race the consumer's exit), which would
    # blur what these tests look at: which deliveries the coalescer acked.
    await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "classic"})
    for index in range(COUNT):
        await channel.default_exchange.publish(aio_pika.Message(str(index).encode()), name)
    await channel.close()
    yield name
    channel = await connection.channel()
    await channel.queue_delete(name)
    await channel.close()


async def receive_all(
    connection: AbstractRobustConnection, name: str, coalescer: AckCoalescer
) -> tuple[aio_pika.abc.AbstractChannel, list[AbstractIncomingMessage]]:
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=COUNT * 2)
    queue = await channel.get_queue(name)
    received: list[AbstractIncomingMessage] = []
    everything = asyncio.Event()

    async def on_message(message: AbstractIncomingMessage) -> None:
        coalescer.delivered(message)
        received.append(message)
        if len(received) == COUNT:
            everything.set()

    await queue.consume(on_message)
    await asyncio.wait_for(everything.wait(), 10)
    return channel, received


async def left_in_queue(connection: AbstractRobustConnection, name: str) -> int:
    """Take what the queue still holds, one basic.get at a time."""
    channel = await connection.channel()
    queue = await channel.get_queue(name)
    count = 0
    while await queue.get(no_ack=True, fail=False) is not None:
        count += 1
    await channel.close()
    return count


async def test_a_bunch_of_finished_deliveries_is_acked_with_one_frame(
    connection: AbstractRobustConnection, queue_name: str
) -> None:
    """Payments finishing together (one batch commit) cost one ack frame, and all are acked."""
    coalescer = AckCoalescer()
    channel, received = await receive_all(connection, queue_name, coalescer)
    await asyncio.gather(*(coalescer.ack(message) for message in received))
    assert coalescer.frames == 1
    await channel.close()  # anything unacked would now return to the queue
    assert await left_in_queue(connection, queue_name) == 0


async def test_an_unfinished_delivery_is_never_covered_by_a_multiple_ack(
    connection: AbstractRobustConnection, queue_name: str
) -> None:
    """The oldest delivery is still running: the others are acked, it is not."""
    coalescer = AckCoalescer()
    channel, received = await receive_all(connection, queue_name, coalescer)
    still_running, *finished = received
    await asyncio.gather(*(coalescer.ack(message) for message in finished))
    await channel.close()
    assert await left_in_queue(connection, queue_name) == 1
    assert len(finished) == COUNT - 1
    del still_running


async def test_a_requeued_delivery_comes_back_while_its_neighbours_are_acked(
    connection: AbstractRobustConnection, queue_name: str
) -> None:
    """A nack in the middle of a run: the run is acked around it, the nacked one requeued."""
    coalescer = AckCoalescer()
    channel, received = await receive_all(connection, queue_name, coalescer)
    middle = received[COUNT // 2]
    await coalescer.nack(middle, requeue=True)
    await asyncio.gather(*(coalescer.ack(m) for m in received if m is not middle))
    # The nack went out alone, the 49 acks in one multiple ack.
    assert coalescer.frames == 2
    await channel.close()
    assert await left_in_queue(connection, queue_name) == 1


async def test_acks_in_many_turns_still_settle_everything(
    connection: AbstractRobustConnection, queue_name: str
) -> None:
    """Deliveries finishing one by one, newest first, are all acked in the end."""
    coalescer = AckCoalescer()
    channel, received = await receive_all(connection, queue_name, coalescer)
    for message in reversed(received):
        await coalescer.ack(message)
    await channel.close()
    assert await left_in_queue(connection, queue_name) == 0


class GatedAck:
    """A delivery whose ack frame is held back until ``gate`` opens (records when asked)."""

    def __init__(self, message: AbstractIncomingMessage, gate: asyncio.Event) -> None:
        self.message = message
        self.gate = gate
        self.asked = asyncio.Event()

    @property
    def delivery_tag(self) -> int | None:
        return self.message.delivery_tag

    @property
    def channel(self) -> object:
        return self.message.channel

    async def ack(self, multiple: bool = False) -> None:
        self.asked.set()
        await self.gate.wait()
        await self.message.ack(multiple=multiple)


async def test_a_later_run_never_overtakes_older_single_acks(
    connection: AbstractRobustConnection, queue_name: str
) -> None:
    """Deliveries 10-29 finish behind a running one and are acked singly; while those
    frames are still going out, everything else finishes. The multiple ack of that second run
    covers 10-29 at the broker, so it must wait for their single acks, or the broker sees an
    ack for an already-settled tag and closes the channel (found by the chaos suite)."""
    coalescer = AckCoalescer()
    channel, received = await receive_all(connection, queue_name, coalescer)
    gate = asyncio.Event()
    first_single = GatedAck(received[10], gate)
    last_of_run = GatedAck(received[-1], asyncio.Event())
    last_of_run.gate.set()
    singles = [asyncio.ensure_future(coalescer.ack(first_single))]  # type: ignore[arg-type]
    singles += [asyncio.ensure_future(coalescer.ack(m)) for m in received[11:30]]
    await first_single.asked.wait()  # the single acks are being sent, the first one held
    rest = [*received[:10], *received[30:-1]]
    run = [asyncio.ensure_future(coalescer.ack(m)) for m in rest]
    run.append(asyncio.ensure_future(coalescer.ack(last_of_run)))  # type: ignore[arg-type]
    with pytest.raises(TimeoutError):  # the run's frame waits behind the held single ack
        await asyncio.wait_for(asyncio.shield(last_of_run.asked.wait()), 0.3)
    gate.set()
    await asyncio.gather(*singles, *run)
    assert not channel.is_closed, "the broker closed the channel: an ack named an unknown tag"
    await channel.close()
    assert await left_in_queue(connection, queue_name) == 0
