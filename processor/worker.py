"""The composition root of the worker: wire adapters to the use case and run the consumer.

Shutdown (SIGTERM/SIGINT or ``stop``): stop consuming, give in-flight messages ``grace``
seconds to finish, return the rest to the queue, close. A payment is never dead-lettered
because the worker stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractQueue, AbstractRobustChannel, AbstractRobustConnection
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from processor.adapters.amqp_publisher import AmqpPublisher
from processor.adapters.batching_store import BatchingStore
from processor.adapters.gateway_factory import build_gateway
from processor.adapters.resilient_store import ResilientStore
from processor.adapters.sql_store import SqlPaymentStore
from processor.circuit import CircuitState, WatchedGateway
from processor.clock import SystemClock
from processor.config import Settings
from processor.consumer import PaymentConsumer
from processor.db import is_sqlite, make_engine, reachable
from processor.handled import Handled
from processor.metrics import MeteredGateway, WorkerMetrics, probe_app, serve_probes
from processor.migrate import ensure_current
from processor.ports import ChargeLookup, Gateway
from processor.protection.breaker import GatewayBreaker
from processor.protection.guard import (
    GatewayWatch,
    RateLimitedGateway,
    RateLimitedLookup,
    share_reporter,
)
from processor.protection.peers import PeerCounter
from processor.protection.rate import RateLimiter
from processor.startup import reach_broker, reach_database, report_gateway
from processor.use_cases import Deps
from retry.names import Names
from retry.topology import declare_topology

log = logging.getLogger("payproc.worker")


@dataclass
class WorkerOptions:
    grace_seconds: float = 25.0
    wrap_gateway: Callable[[Gateway], Gateway] | None = None
    """Wraps the gateway adapter before the metrics and circuit-breaker wrappers do, so what
    it injects is seen as the worker sees a real gateway (the fault-injection tests use it)."""


class Worker:
    def __init__(self, settings: Settings, options: WorkerOptions | None = None) -> None:
        self.settings = settings
        self.options = options or WorkerOptions()
        self.names = Names(settings.namespace)
        self.circuit = GatewayBreaker(settings.breaker_rules)
        self.ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._queue: AbstractQueue | None = None
        self._consumer_tag: str | None = None
        self._consumer: PaymentConsumer | None = None
        self._circuit_changed = asyncio.Event()
        self._prefetch = 0
        self.metrics = WorkerMetrics()
        self.watch = GatewayWatch(self.circuit, self.metrics, self._circuit_changed.set)
        self.limiter = (
            RateLimiter(settings.gateway_rate_limit) if settings.gateway_rate_limit else None
        )
        self._peers: PeerCounter | None = None
        self._probes: web.AppRunner | None = None
        self._engine: AsyncEngine | None = None

    @property
    def consumer(self) -> PaymentConsumer:
        assert self._consumer is not None, "worker not started"
        return self._consumer

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        settings = self.settings
        engine = make_engine(settings.database_url)
        self._engine = engine
        try:
            await reach_database(engine, settings.database_url, settings.startup_timeout)
            await ensure_current(engine, auto_upgrade=is_sqlite(settings.database_url))
        except BaseException:
            await engine.dispose()
            raise
        gateway = build_gateway(settings)
        try:
            connection = await reach_broker(
                settings.amqp_url,
                settings.startup_timeout,
                connection_name=f"payproc-worker {settings.namespace}",
            )
        except BaseException:
            await gateway.aclose()
            await engine.dispose()
            raise
        self._connection = connection
        publisher = AmqpPublisher(connection, self.names)
        sql_store: SqlPaymentStore | None = None
        try:
            await declare_topology(
                connection, self.names, settings.retry_delays, settings.delivery_limit
            )
            await publisher.open()
            wrap = self.options.wrap_gateway
            sender: Gateway = MeteredGateway(wrap(gateway) if wrap else gateway, self.metrics)
            lookup: ChargeLookup = gateway
            if self.limiter is not None:
                sender = RateLimitedGateway(sender, self.limiter, self.metrics)
                lookup = RateLimitedLookup(gateway, self.limiter, self.metrics)
                self._peers = PeerCounter(
                    connection, settings.namespace, share_reporter(self.limiter, self.metrics)
                )
                await self._peers.start()
            charger: Gateway = WatchedGateway(sender, self.watch.on_answer)
            sql_store = SqlPaymentStore(engine)
            deps = Deps(
                gateway=charger,
                store=ResilientStore(BatchingStore(sql_store), settings.store_patience),
                publisher=publisher,
                policy=settings.policy,
                clock=SystemClock(),
                lease_seconds=settings.lease_seconds,
                gateway_down=self.watch.spares,
                lookup=lookup,
            )
            self._consumer = PaymentConsumer(
                deps, settings.poison_threshold, on_outcome=self._on_outcome
            )
            channel = await connection.channel()
            assert isinstance(channel, aio_pika.RobustChannel)
            self._channel = channel
            self._queue = await channel.get_queue(self.names.requests, ensure=True)
            await self._start_consuming(settings.prefetch)
            self.metrics.in_flight.set_function(lambda: len(self.consumer.in_flight))
            if settings.metrics_bind != "off":
                self._probes = await serve_probes(
                    probe_app(self.metrics.render, self._readiness), settings.metrics_bind
                )
            if settings.gateway == "stripe":
                await report_gateway(settings.stripe_api_base, "PAYPROC_STRIPE_API_BASE")
            else:
                await report_gateway(settings.gateway_url)
            self.ready.set()
            log.info(
                "worker consuming",
                extra={"queue": self.names.requests, "prefetch": settings.prefetch},
            )
            await self._supervise()
        finally:
            await self._shutdown()
            if self._peers is not None:
                await self._peers.stop()
            if self._probes is not None:
                await self._probes.cleanup()
            await publisher.close()
            await connection.close()
            await gateway.aclose()
            if sql_store is not None:
                await sql_store.aclose()
            await engine.dispose()

    async def _start_consuming(self, prefetch: int) -> None:
        assert self._channel is not None
        assert self._queue is not None
        await self._channel.set_qos(prefetch_count=prefetch)
        self._consumer_tag = await self._queue.consume(self.consumer.handle, no_ack=False)
        self._prefetch = prefetch
        self.metrics.consumer_attached.set(1)

    async def _stop_consuming(self) -> None:
        self._prefetch = 0
        self.metrics.consumer_attached.set(0)
        if self._queue is not None and self._consumer_tag is not None:
            tag, self._consumer_tag = self._consumer_tag, None
            with contextlib.suppress(Exception):
                await self._queue.cancel(tag)

    @property
    def probe_port(self) -> int | None:
        """The port /metrics and the probes listen on (useful with a ``:0`` bind)."""
        if self._probes is None or not self._probes.addresses:
            return None
        return int(self._probes.addresses[0][1])

    async def _readiness(self) -> dict[str, bool]:
        connection = self._connection
        return {
            "broker": connection is not None and not connection.is_closed,
            "database": await reachable(self._engine),
            "consumer": self._consumer_tag is not None,
        }

    def _on_outcome(self, handled: Handled, _seconds: float) -> None:
        self.metrics.observe(handled)

    async def _supervise(self) -> None:
        """Wait for stop, pausing and resuming consumption as the circuit demands."""
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            self._circuit_changed.clear()
            await self._apply_circuit(loop.time())
            timeout = None
            if self.circuit.state is CircuitState.OPEN and self.circuit.opened_at is not None:
                elapsed = loop.time() - self.circuit.opened_at
                timeout = max(self.circuit.cooldown - elapsed, 0.01)
            waiters = [
                asyncio.ensure_future(self._stop.wait()),
                asyncio.ensure_future(self._circuit_changed.wait()),
            ]
            _done, pending = await asyncio.wait(
                waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in pending:
                waiter.cancel()

    async def _apply_circuit(self, now: float) -> None:
        state = self.circuit.state
        consuming = self._consumer_tag is not None
        if state is CircuitState.OPEN:
            if consuming:
                log.warning("gateway failing: circuit open, pausing consumption")
                await self._stop_consuming()
            if self.circuit.probe_due(now):
                log.info("circuit half-open: letting messages through one at a time")
                self.circuit.half_open()
                self.metrics.set_circuit(self.circuit.state)
                await self._start_consuming(1)
        elif state is CircuitState.CLOSED and self._prefetch != self.settings.prefetch:
            log.info("circuit closed: resuming at full prefetch")
            await self._stop_consuming()
            await self._start_consuming(self.settings.prefetch)

    async def _shutdown(self) -> None:
        await self._stop_consuming()
        if self._consumer is None:
            return
        in_flight = set(self._consumer.in_flight)
        if in_flight:
            log.info("waiting for %d in-flight payments", len(in_flight))
            _done, pending = await asyncio.wait(in_flight, timeout=self.options.grace_seconds)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
        stats = self._consumer.stats
        log.info(
            "worker stopped",
            extra={
                "handled": sum(stats.outcomes.values()),
                "gateway_calls": stats.gateway_calls,
                "requeued": stats.requeued,
                "ack_frames": self._consumer.acks.frames,
            },
        )
