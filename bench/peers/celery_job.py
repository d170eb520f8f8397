"""The payment job as a Celery task, and its producer.

Worker (started by ``bench.peers.runs``)::

    celery -A bench.peers.celery_job worker --pool threads --concurrency 16 \
        --prefetch-multiplier 4 --without-gossip --without-mingle --without-heartbeat

Settings a payment team would use: ``acks_late`` (a crash redelivers instead of losing the
payment), prefetch = multiplier x concurrency, publisher confirms
(``broker_transport_options={"confirm_publish": True}``), durable queue and persistent
messages (Celery's defaults), no result backend. The queue name comes from ``BENCH_QUEUE`` so
every run has its own queue.

Producer: ``python -m bench.peers.celery_job produce --count N --seed S [--part i --parts k]``
publishes the same payment dicts payproc's producer makes, one ``apply_async`` each.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

from bench.peers.job import producer_main, shared_job

QUEUE = os.environ.get("BENCH_QUEUE", "bench-celery")
AMQP_URL = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")

app = Celery("bench_celery", broker=AMQP_URL)
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=int(os.environ.get("BENCH_CELERY_PREFETCH_MULTIPLIER", "4")),
    task_default_queue=QUEUE,
    task_default_exchange=QUEUE,
    task_default_routing_key=QUEUE,
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    broker_transport_options={"confirm_publish": True},
    broker_connection_retry_on_startup=True,
    worker_enable_remote_control=False,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.charge", acks_late=True, ignore_result=True)  # type: ignore[untyped-decorator]
def charge(payment: dict[str, Any]) -> str:
    """Validate, charge with the idempotency key, record the outcome."""
    return shared_job().run(payment)


def produce(count: int, seed: int, part: int, parts: int) -> int:
    from processor.producer import generate_payments

    sent = 0
    with app.producer_or_acquire() as producer:
        for index, payment in enumerate(generate_payments(count, seed)):
            if index % parts == part:
                charge.apply_async(args=(payment,), producer=producer)
                sent += 1
    return sent


def main(argv: list[str] | None = None) -> int:
    return producer_main("python -m bench.peers.celery_job", produce, argv)


if __name__ == "__main__":
    raise SystemExit(main())
