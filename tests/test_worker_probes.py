"""The worker's /metrics, /healthz and /readyz."""

from __future__ import annotations

import asyncio

import httpx

from processor.producer import payment_message, publish_bodies
from tests.support.payments import payment


async def metrics_showing(port: int, expected: list[str], within: float = 10.0) -> str:
    """The /metrics text once it holds every ``expected`` line. The worker counts an outcome
    after the message's ack went out, which is after its event was published, so a test that
    saw the event may read /metrics a moment too early; there is no event to await for the
    counter itself, so this polls the endpoint until it shows the lines or ``within`` ends."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        while True:
            text = (await client.get("/metrics")).text
            if all(line in text for line in expected) or loop.time() > deadline:
                return text
            await asyncio.sleep(0.05)


def has_event(payment_id: str, key: str):
    return lambda ms: any(
        m.routing_key == key and m.json().get("payment_id") == payment_id for m in ms
    )


async def test_metrics_count_outcomes_and_gateway_answers(
    start_worker, connection, topology, events, gateway
):
    """After one success and one decline, the counters and the latency histogram show them."""
    worker = await start_worker(gateway_url=gateway.url)
    ok, declined = payment(), payment(amount=2402)
    await publish_bodies(connection, topology, [payment_message(ok), payment_message(declined)])
    await events.wait_for(has_event(ok["payment_id"], "payment.succeeded"))
    await events.wait_for(has_event(declined["payment_id"], "payment.declined"))
    expected = [
        'payproc_payments_total{outcome="succeeded"} 1.0',
        'payproc_payments_total{outcome="declined"} 1.0',
        'payproc_gateway_responses_total{code="402"} 1.0',
        "payproc_gateway_request_duration_seconds_count 2.0",
        "payproc_circuit_state 0.0",
        "payproc_consumer_attached 1.0",
    ]
    assert worker.probe_port is not None
    text = await metrics_showing(worker.probe_port, expected)
    for line in expected:
        assert line in text


async def test_readyz_reports_each_dependency(start_worker, gateway):
    """A consuming worker with a reachable broker and database is ready and alive."""
    worker = await start_worker(gateway_url=gateway.url)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{worker.probe_port}") as client:
        health = await client.get("/healthz")
        ready = await client.get("/readyz")
    assert health.status_code == 200
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"broker": True, "database": True, "consumer": True}
