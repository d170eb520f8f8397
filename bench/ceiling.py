"""The ceiling: a bare aio-pika loop on the same broker, the limit no worker can beat.

What one run does: declare a fresh durable queue of payproc's kind (quorum; a classic queue
is measured too, for reference: the peers' queues are classic), publish ``count`` copies of
the payment message persistent with publisher confirms (500 confirms in flight, as
``payproc submit`` does), then consume them with manual acks (prefetch 500, one ack per
message) and time it. No database, no gateway, no decoding: only the broker round trips
every worker must pay, on the same uvloop event loop payproc's worker runs.

Why: "payments/s" of any worker is bounded by what the broker can deliver and take acks
for on this machine; the 1-worker target is stated as a share of this figure.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from bench.common import connect, delete_queues, short_id
from bench.figures import Run

WINDOW = 500
PREFETCH = 500


@dataclass(frozen=True)
class CeilingRun:
    publish: Run
    consume: Run


async def once(count: int, queue_type: str = "quorum") -> CeilingRun:
    """Publish ``count`` messages (confirmed), then consume+ack them; both timed."""
    from processor.producer import generate_payments, payment_message

    name = f"bench-ceiling-{queue_type}-{short_id()}"
    connection = await connect()
    try:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(name, durable=True, arguments={"x-queue-type": queue_type})
        exchange = channel.default_exchange
        messages = [payment_message(p) for p in generate_payments(count, 99)]
        started = time.perf_counter()
        for offset in range(0, count, WINDOW):
            batch = messages[offset : offset + WINDOW]
            await asyncio.gather(*(exchange.publish(m, name) for m in batch))
        publish_seconds = time.perf_counter() - started

        consume_channel = await connection.channel()
        await consume_channel.set_qos(prefetch_count=PREFETCH)
        consume_queue = await consume_channel.get_queue(name)
        received = 0
        started = time.perf_counter()
        async with consume_queue.iterator() as stream:
            async for message in stream:
                await message.ack()
                received += 1
                if received >= count:
                    break
        consume_seconds = time.perf_counter() - started
        await consume_channel.close()
        await channel.close()
        label = f"bare aio-pika ({queue_type} queue)"
        return CeilingRun(
            publish=Run(f"{label} confirmed publish", count, publish_seconds),
            consume=Run(f"{label} consume+ack", count, consume_seconds),
        )
    finally:
        await delete_queues(connection, [name])
        await connection.close()
