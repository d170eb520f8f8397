"""Faults injected from outside (``WorkerOptions.wrap_gateway``) reach the worker the way a
misbehaving gateway does: through the metrics and circuit-breaker wrappers."""

from __future__ import annotations

import asyncio

from processor.circuit import CircuitState
from processor.ports import Gateway
from processor.producer import payment_message, publish_bodies
from processor.worker import WorkerOptions
from retry.policy import GatewayAnswer, Transient, TransientKind
from schemas.outcome import ErrorInfo
from schemas.payment import PaymentRequest
from tests.support.payments import payment


class InjectedOutage:
    """Answers every charge with a 503 without calling the gateway it wraps."""

    def __init__(self, inner: Gateway) -> None:
        self.inner = inner
        self.calls = 0

    async def charge(
        self, request: PaymentRequest, traceparent: str | None = None
    ) -> GatewayAnswer:
        self.calls += 1
        return Transient(
            TransientKind.SERVER_ERROR,
            ErrorInfo(code="http_503", message="injected outage"),
            http_status=503,
        )


async def test_an_injected_outage_is_metered_and_opens_the_circuit(
    start_worker, connection, topology, gateway
) -> None:
    faults: list[InjectedOutage] = []

    def wrap(inner: Gateway) -> Gateway:
        faults.append(InjectedOutage(inner))
        return faults[-1]

    worker = await start_worker(
        WorkerOptions(grace_seconds=5, wrap_gateway=wrap),
        gateway_url=gateway.url,
        circuit_threshold=5,
        circuit_cooldown=60,
    )
    await publish_bodies(connection, topology, [payment_message(payment()) for _ in range(10)])
    # The breaker has no public event; its state changes synchronously with the 5th answer,
    # so a bounded wait on the state is enough.
    async with asyncio.timeout(30):
        while worker.circuit.state is not CircuitState.OPEN:
            await asyncio.sleep(0.02)
    assert len(faults) == 1
    assert faults[0].calls >= 5
    assert gateway.state.charges == 0, "the fault answered in the gateway's place"
    metrics = worker.metrics.render().decode()
    assert f'payproc_gateway_responses_total{{code="503"}} {float(faults[0].calls)}' in metrics
    assert "payproc_circuit_state 2.0" in metrics  # open
