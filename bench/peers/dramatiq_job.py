"""The payment job as a Dramatiq actor, and its producer.

Worker (started by ``bench.peers.runs``)::

    dramatiq bench.peers.dramatiq_job -p 2 -t 8

``RabbitmqBroker(confirm_delivery=True)``: publisher confirms; Dramatiq's queues are durable
and its messages persistent; messages are acked after the actor returns. ``max_retries=0``:
the zero-failure scenarios never need a retry, and a failure must not hide as a retry. The
queue name comes from ``BENCH_QUEUE`` so every run has its own queue.

Producer: ``python -m bench.peers.dramatiq_job produce --count N --seed S [--part i --parts k]``
sends the same payment dicts payproc's producer makes, one ``charge.send`` each.
"""

from __future__ import annotations

import os
from typing import Any

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker

from bench.peers.job import producer_main, shared_job

QUEUE = os.environ.get("BENCH_QUEUE", "bench-dramatiq")
AMQP_URL = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")

broker = RabbitmqBroker(url=AMQP_URL, confirm_delivery=True)
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name="charge", queue_name=QUEUE, max_retries=0)
def charge(payment: dict[str, Any]) -> str:
    """Validate, charge with the idempotency key, record the outcome."""
    return shared_job().run(payment)


def produce(count: int, seed: int, part: int, parts: int) -> int:
    from processor.producer import generate_payments

    sent = 0
    for index, payment in enumerate(generate_payments(count, seed)):
        if index % parts == part:
            charge.send(payment)
            sent += 1
    broker.close()
    return sent


def main(argv: list[str] | None = None) -> int:
    return producer_main("python -m bench.peers.dramatiq_job", produce, argv)


if __name__ == "__main__":
    raise SystemExit(main())
