"""SIGTERM stops a worker promptly and never dead-letters a payment because of it."""

from __future__ import annotations

import asyncio
import signal
import time

from processor.producer import payment_message, publish_bodies
from tests.support.collect import collect_exchange
from tests.support.payments import payment
from tests.support.processes import processes


def worker_env(settings, gateway_url: str) -> dict[str, str]:
    return {
        "PAYPROC_AMQP_URL": settings.amqp_url,
        "PAYPROC_DATABASE_URL": settings.database_url,
        "PAYPROC_NAMESPACE": settings.namespace,
        "PAYPROC_GATEWAY_URL": gateway_url,
        "PAYPROC_RETRY_DELAYS": ",".join(str(d) for d in settings.retry_delays),
        "PAYPROC_MAX_ATTEMPTS": str(settings.max_attempts),
        "PAYPROC_PREFETCH": "20",
        "PAYPROC_METRICS_BIND": "127.0.0.1:0",
    }


async def test_sigterm_returns_in_flight_payments_and_loses_none(
    settings_factory, connection, topology, gateway, dlq, tmp_path
):
    """A worker killed politely mid-batch exits in time; a new worker finishes every payment."""
    settings = settings_factory()
    gateway.state.update_config({"latency": 0.5})
    events, channel = await collect_exchange(connection, topology.events, "payment.succeeded")
    bodies = [payment() for _ in range(60)]
    env = worker_env(settings, gateway.url)
    with processes(tmp_path) as procs:
        first = procs.start("worker", "--grace", "2", env=env, name="worker")
        await publish_bodies(connection, topology, [payment_message(b) for b in bodies])
        await events.wait_for(lambda ms: len(ms) >= 1, timeout=30)
        first.send_signal(signal.SIGTERM)
        started = time.monotonic()
        code = await asyncio.to_thread(first.wait, 30)
        assert code == 0, procs.log_of(first)
        assert time.monotonic() - started < 30
        assert len(events.messages) < len(bodies), "the worker must stop before the backlog ends"

        procs.start("worker", env=env, name="worker")
        wanted = {b["payment_id"] for b in bodies}
        await events.wait_for(lambda ms: wanted <= {m.json()["payment_id"] for m in ms}, timeout=60)
    assert dlq.messages == []
    assert gateway.state.double_charged == []
    await channel.close()
