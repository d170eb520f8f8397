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

import argparse
import os
from typing import Any

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker

QUEUE = os.environ.get("BENCH_QUEUE", "bench-dramatiq")
AMQP_URL = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")

broker = RabbitmqBroker(url=AMQP_URL, confirm_delivery=True)
dramatiq.set_broker(broker)

_job: Any = None


def _get_job() -> Any:
    global _job
    if _job is None:
        from bench.peers.job import ChargeJob

        _job = ChargeJob.from_env()
    return _job


@dramatiq.actor(actor_name="charge", queue_name=QUEUE, max_retries=0)
def charge(payment: dict[str, Any]) -> str:
    """Validate, charge with the idempotency key, record the outcome."""
    result: str = _get_job().run(payment)
    return result


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
    parser = argparse.ArgumentParser(prog="python -m bench.peers.dramatiq_job")
    parser.add_argument("command", choices=["produce"])
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--part", type=int, default=0)
    parser.add_argument("--parts", type=int, default=1)
    ns = parser.parse_args(argv)
    sent = produce(ns.count, ns.seed, ns.part, ns.parts)
    print(f"published {sent}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
