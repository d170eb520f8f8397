"""A dropped broker connection is recovered and the consumer really comes back."""

from __future__ import annotations

from typing import Any

from processor.producer import payment_message, publish_bodies
from tests.support.collect import collect_exchange
from tests.support.payments import payment
from tests.support.proxy import TcpProxy


def succeeded_ids(messages: list[Any]) -> set[str]:
    return {m.json()["payment_id"] for m in messages}


async def test_worker_recovers_after_connection_cut(start_worker, connection, topology, gateway):
    """After the proxy cuts the worker's connection mid-flow, every payment is charged once."""
    proxy = TcpProxy()
    await proxy.start()
    try:
        gateway.state.update_config({"latency": 0.05})
        worker = await start_worker(gateway_url=gateway.url, amqp_url=proxy.url(), prefetch=20)
        events, channel = await collect_exchange(connection, topology.events, "payment.succeeded")
        first = [payment() for _ in range(100)]
        await publish_bodies(connection, topology, [payment_message(b) for b in first])
        await events.wait_for(lambda ms: len(ms) >= 10)
        connections_before = proxy.connections_made
        assert proxy.cut() >= 1
        # The robust connection reconnects through the proxy; wait for it, then prove the
        # consumer is back by processing payments published only after the cut.
        await proxy.wait_connections(connections_before + 1)
        second = [payment() for _ in range(50)]
        await publish_bodies(connection, topology, [payment_message(b) for b in second])
        wanted = {b["payment_id"] for b in first + second}
        await events.wait_for(lambda ms: wanted <= succeeded_ids(ms), timeout=60)
        assert gateway.state.double_charged == []
        assert all(gateway.state.charge_count(pid) == 1 for pid in wanted)
        assert worker.consumer.stats.outcomes.get("succeeded", 0) >= 1
        await channel.close()
    finally:
        await proxy.close()
