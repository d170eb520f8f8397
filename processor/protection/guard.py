"""Wiring of gateway protection into a worker: feed the breaker, pace the requests, report.

``GatewayWatch`` feeds the breaker every answer as it arrives, logs and exports each change
(why the circuit opened, merchants isolated) and answers the use case's question "is this
failure spared?". ``RateLimitedGateway`` waits for a rate slot before each request and turns
a 429 into a pause of every sender of the worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from processor.metrics import WorkerMetrics
from processor.ports import ChargeLookup, Gateway
from processor.protection.breaker import CircuitState, GatewayBreaker
from processor.protection.rate import RateLimiter
from retry.policy import (
    GatewayAnswer,
    LookupAnswer,
    LookupUnavailable,
    Transient,
    TransientKind,
)
from schemas.payment import PaymentRequest

log = logging.getLogger("payproc.worker")

ISOLATION_CHECK_EVERY = 0.5
"""Seconds between two looks for newly isolated merchants (a scan of the evidence)."""


class GatewayWatch:
    def __init__(
        self,
        breaker: GatewayBreaker,
        metrics: WorkerMetrics,
        on_change: Callable[[], None],
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.breaker = breaker
        self._metrics = metrics
        self._on_change = on_change
        self._clock = clock or (lambda: asyncio.get_running_loop().time())
        self._isolated: frozenset[str] = frozenset()
        self._isolation_checked = float("-inf")
        self._held = False

    def on_answer(self, request: PaymentRequest, answer: GatewayAnswer) -> None:
        """Feed one answer; 429s are the rate limiter's business, not evidence of an outage."""
        if isinstance(answer, Transient) and answer.kind is TransientKind.RATE_LIMITED:
            return
        transient = isinstance(answer, Transient)
        breaker = self.breaker
        before = breaker.state
        now = self._clock()
        after = breaker.record(request.key, request.merchant_id, transient, now)
        if transient and now - self._isolation_checked >= ISOLATION_CHECK_EVERY:
            self._isolation_checked = now
            self._check_isolation()
        if before is not after:
            self.changed(before, after)

    def changed(self, before: CircuitState, after: CircuitState) -> None:
        """Log and export a state change, then wake the worker's supervisor."""
        breaker = self.breaker
        self._metrics.set_circuit(after)
        reason = breaker.opened_because
        if after is CircuitState.OPEN and before is CircuitState.CLOSED and reason is not None:
            self._metrics.circuit_opened.inc()
            for kind, value in (
                ("payments", reason.payments),
                ("failing_payments", reason.failing_payments),
                ("merchants", reason.merchants),
                ("failing_merchants", reason.failing_merchants),
            ):
                self._metrics.circuit_evidence.labels(kind=kind).set(value)
            log.warning(
                "circuit closed -> open: %d of %d distinct payments failing across %d of %d "
                "merchants",
                reason.failing_payments,
                reason.payments,
                reason.failing_merchants,
                reason.merchants,
                extra={"circuit": after.value},
            )
        else:
            log.warning(
                "circuit %s -> %s", before.value, after.value, extra={"circuit": after.value}
            )
        if after is CircuitState.CLOSED:
            self._check_isolation()
            self._set_held(False)
        self._on_change()

    def spares(self, request: PaymentRequest) -> bool:
        """Whether a transient failure of this payment keeps its attempt budget."""
        now = self._clock()
        held = self.breaker.held_too_long(now)
        if held != self._held:
            self._set_held(held)
        return self.breaker.spares(request.key, request.merchant_id, now)

    def _set_held(self, held: bool) -> None:
        self._held = held
        self._metrics.circuit_hold_exceeded.set(1 if held else 0)
        if held:
            log.warning(
                "circuit held longer than %gs: failures spend their attempts again",
                self.breaker.rules.max_hold,
            )

    def _check_isolation(self) -> None:
        isolated = frozenset(self.breaker.isolated_merchants())
        if isolated == self._isolated:
            return
        for merchant in sorted(isolated - self._isolated):
            log.warning(
                "merchant isolated: its payments fail while others succeed; they walk their "
                "retry ladder and are kept out of the circuit",
                extra={"merchant_id": merchant},
            )
        for merchant in sorted(self._isolated - isolated):
            log.info("merchant no longer isolated", extra={"merchant_id": merchant})
        self._isolated = isolated
        self._metrics.merchants_isolated.set(len(isolated))


class _Paced:
    """What the rate-limited decorators share: the limiter, and slowing down on a 429."""

    def __init__(self, limiter: RateLimiter, metrics: WorkerMetrics) -> None:
        self._limiter = limiter
        self._metrics = metrics

    def _refused(self, retry_after: float | None) -> None:
        """The gateway answered 429: pause and halve every sender of this worker."""
        self._limiter.rate_limited(retry_after)
        self._metrics.gateway_rate.set(self._limiter.core.rate)


class RateLimitedGateway(_Paced):
    """Gateway decorator: one rate slot per request; a 429 pauses all of this worker's sends."""

    def __init__(self, inner: Gateway, limiter: RateLimiter, metrics: WorkerMetrics) -> None:
        super().__init__(limiter, metrics)
        self._inner = inner

    async def charge(
        self, request: PaymentRequest, traceparent: str | None = None
    ) -> GatewayAnswer:
        await self._limiter.acquire()
        answer = await self._inner.charge(request, traceparent)
        if isinstance(answer, Transient) and answer.kind is TransientKind.RATE_LIMITED:
            self._refused(answer.retry_after)
        return answer


class RateLimitedLookup(_Paced):
    """Charge-lookup decorator: a lookup is a gateway request too, so it takes a slot of the
    same limiter as the charges, and a 429 on it slows every sender of this worker."""

    def __init__(self, inner: ChargeLookup, limiter: RateLimiter, metrics: WorkerMetrics) -> None:
        super().__init__(limiter, metrics)
        self._inner = inner

    async def lookup(self, payment_id: str) -> LookupAnswer:
        await self._limiter.acquire()
        answer = await self._inner.lookup(payment_id)
        if isinstance(answer, LookupUnavailable) and answer.rate_limited:
            self._refused(answer.retry_after)
        return answer


def share_reporter(limiter: RateLimiter, metrics: WorkerMetrics) -> Callable[[int], None]:
    """The ``on_count`` of a ``PeerCounter``: re-balance the share and report it."""

    reported = False

    def on_count(peers: int) -> None:
        nonlocal reported
        changed = peers != limiter.peers or not reported
        reported = True
        limiter.share_for(peers)
        metrics.gateway_peers.set(peers)
        metrics.gateway_rate_share.set(limiter.core.ceiling)
        metrics.gateway_rate.set(limiter.core.rate)
        metrics.gateway_rate_limit.set(limiter.limit)
        if changed:
            log.info(
                "gateway rate share: %g/s over %d workers -> %g/s",
                limiter.limit,
                peers,
                limiter.core.ceiling,
                extra={"peers": peers},
            )

    return on_count
