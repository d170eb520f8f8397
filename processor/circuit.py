"""A circuit breaker over gateway outcomes (pure state machine, no I/O).

A gateway outage longer than the whole retry ladder would otherwise walk every queued payment
through all its attempts and park the backlog. When at least 90% of the last ``threshold``
gateway answers were transient the circuit opens and the worker stops taking messages; after
a cool-down it lets exactly one message through (half-open). A good answer closes it, a
transient one re-opens it with a doubled cool-down (capped).

A share over a window rather than a run of consecutive failures: with a hundred payments in
flight, answers do not arrive in random order (a batch of failures finishes together), so a
healthy gateway with a modest failure rate still produces long runs of failures in a row,
which would trip a consecutive-count breaker.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from enum import StrEnum

from processor.ports import Gateway
from retry.policy import GatewayAnswer, Transient
from schemas.payment import PaymentRequest

OPEN_SHARE = 0.9


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(self, threshold: int, cooldown: float, max_cooldown: float = 60.0) -> None:
        self.threshold = threshold
        self.base_cooldown = cooldown
        self.max_cooldown = max(max_cooldown, cooldown)
        self.state = CircuitState.CLOSED
        self.consecutive_failures = 0
        self.cooldown = cooldown
        self.opened_at: float | None = None
        self.times_opened = 0
        self._window: deque[bool] = deque(maxlen=threshold)
        self._needed = max(1, math.ceil(OPEN_SHARE * threshold))

    def record(self, transient: bool, now: float) -> CircuitState:
        """Feed one gateway outcome; returns the new state."""
        if not transient:
            self.consecutive_failures = 0
            if self.state is not CircuitState.CLOSED:
                self.state = CircuitState.CLOSED
                self.cooldown = self.base_cooldown
                self.opened_at = None
                self._window.clear()
            self._window.append(False)
            return self.state
        self.consecutive_failures += 1
        if self.state is CircuitState.HALF_OPEN:
            self.cooldown = min(self.cooldown * 2, self.max_cooldown)
            self._open(now)
        elif self.state is CircuitState.CLOSED:
            self._window.append(True)
            if len(self._window) == self.threshold and sum(self._window) >= self._needed:
                self._open(now)
        return self.state

    def _open(self, now: float) -> None:
        self._window.clear()
        self.state = CircuitState.OPEN
        self.opened_at = now
        self.times_opened += 1

    def probe_due(self, now: float) -> bool:
        """True when an open circuit has cooled down and should let one probe through."""
        return (
            self.state is CircuitState.OPEN
            and self.opened_at is not None
            and now - self.opened_at >= self.cooldown
        )

    def half_open(self) -> None:
        self.state = CircuitState.HALF_OPEN


class WatchedGateway:
    """Gateway decorator telling ``on_answer(transient)`` about every answer, as it arrives."""

    def __init__(self, inner: Gateway, on_answer: Callable[[bool], None]) -> None:
        self._inner = inner
        self._on_answer = on_answer

    async def charge(
        self, request: PaymentRequest, traceparent: str | None = None
    ) -> GatewayAnswer:
        answer = await self._inner.charge(request, traceparent)
        self._on_answer(isinstance(answer, Transient))
        return answer
