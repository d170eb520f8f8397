"""Prometheus metrics of the worker, and the small HTTP server for /metrics and probes.

Names follow Prometheus conventions: ``_total`` counters, base units (seconds), one
``payproc_`` prefix. The alert rules in ``deploy/prometheus/`` refer to these names.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from processor.circuit import CircuitState
from processor.handled import Handled, Outcome
from processor.ports import Gateway
from retry.names import format_delay
from retry.policy import GatewayAnswer, Transient, http_status
from schemas.payment import PaymentRequest

CIRCUIT_VALUES = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.payments = Counter(
            "payproc_payments", "Payment messages handled, by outcome", ["outcome"], registry=r
        )
        self.gateway_latency = Histogram(
            "payproc_gateway_request_duration_seconds",
            "Duration of POST /v1/charges",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.gateway_responses = Counter(
            "payproc_gateway_responses",
            "Gateway answers by HTTP status (or timeout / connection_error)",
            ["code"],
            registry=r,
        )
        self.retries = Counter(
            "payproc_retries", "Payments sent to a retry queue, by delay", ["delay"], registry=r
        )
        self.in_flight = Gauge("payproc_in_flight", "Messages being processed", registry=r)
        self.circuit = Gauge(
            "payproc_circuit_state", "Gateway circuit: 0 closed, 1 half-open, 2 open", registry=r
        )
        self.consumer_attached = Gauge(
            "payproc_consumer_attached", "1 while the worker consumes its queue", registry=r
        )
        # Gateway protection (processor.protection).
        self.circuit_opened = Counter(
            "payproc_circuit_opened", "Times the gateway circuit opened", registry=r
        )
        self.circuit_evidence = Gauge(
            "payproc_circuit_open_evidence",
            "Evidence when the circuit last opened: distinct payments and merchants, in total "
            "and failing",
            ["kind"],
            registry=r,
        )
        self.circuit_hold_exceeded = Gauge(
            "payproc_circuit_hold_exceeded",
            "1 while the circuit is held longer than the hold: failures spend attempts again",
            registry=r,
        )
        self.merchants_isolated = Gauge(
            "payproc_merchants_isolated",
            "Merchants whose failures are kept out of the circuit (they walk their ladder)",
            registry=r,
        )
        self.gateway_rate_limit = Gauge(
            "payproc_gateway_rate_limit",
            "PAYPROC_GATEWAY_RATE_LIMIT: gateway requests/s for the namespace (0 = none)",
            registry=r,
        )
        self.gateway_rate_share = Gauge(
            "payproc_gateway_rate_share",
            "This worker's share of the rate limit (limit / live workers), requests/s",
            registry=r,
        )
        self.gateway_rate = Gauge(
            "payproc_gateway_rate",
            "This worker's current sending rate after 429s (AIMD), requests/s",
            registry=r,
        )
        self.gateway_peers = Gauge(
            "payproc_gateway_peers", "Live workers sharing the rate limit", registry=r
        )

        # Labelled children, looked up once: ``labels()`` costs more than the increment.
        self._children: dict[tuple[int, str], Counter] = {}

    def _child(self, counter: Counter, label: str, value: str) -> Counter:
        key = (id(counter), value)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = counter.labels(**{label: value})
        return child

    def gateway_response(self, code: str) -> Counter:
        return self._child(self.gateway_responses, "code", code)

    def observe(self, handled: Handled) -> None:
        """Count one handled message by outcome (``parked_<reason>`` for parkings) and, for a
        retry, by the delay queue it went to (``5s``: the queue's name suffix)."""
        if handled.outcome is Outcome.RETRY and handled.delay is not None:
            self._child(self.retries, "delay", format_delay(handled.delay)).inc()
        self._child(self.payments, "outcome", handled.label).inc()

    def set_circuit(self, state: CircuitState) -> None:
        self.circuit.set(CIRCUIT_VALUES[state])

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _code(answer: GatewayAnswer) -> str:
    """The ``code`` label: the HTTP status, or what went wrong when no status came."""
    status = http_status(answer)
    if status is not None:
        return str(status)
    return answer.kind.value if isinstance(answer, Transient) else "unknown"


class MeteredGateway:
    """Gateway decorator recording latency and answer codes."""

    def __init__(self, inner: Gateway, metrics: WorkerMetrics) -> None:
        self._inner = inner
        self._metrics = metrics

    async def charge(
        self, request: PaymentRequest, traceparent: str | None = None
    ) -> GatewayAnswer:
        started = time.perf_counter()
        answer = await self._inner.charge(request, traceparent)
        self._metrics.gateway_latency.observe(time.perf_counter() - started)
        self._metrics.gateway_response(_code(answer)).inc()
        return answer


ReadyCheck = Callable[[], Awaitable[dict[str, bool]]]


def probe_app(render: Callable[[], bytes], ready: ReadyCheck) -> web.Application:
    """``/healthz`` (the process answers), ``/readyz`` (its dependencies do), ``/metrics``."""

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        checks = await ready()
        ok = all(checks.values())
        return web.json_response(
            {"status": "ready" if ok else "not_ready", "checks": checks}, status=200 if ok else 503
        )

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(body=render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


async def serve_probes(app: web.Application, bind: str) -> web.AppRunner:
    host, _, port = bind.rpartition(":")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host or "127.0.0.1", int(port))
    await site.start()
    return runner
