"""A circuit breaker over gateway outcomes (pure state machine, no I/O).

A gateway outage longer than the whole retry ladder would otherwise walk every queued payment
through all its attempts and park the backlog. After ``threshold`` consecutive transient
failures the circuit opens and the worker stops taking messages; after a cool-down it lets
exactly one message through (half-open). A good answer closes it, a transient one re-opens it
with a doubled cool-down (capped).
"""

from __future__ import annotations

from enum import StrEnum


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

    def record(self, transient: bool, now: float) -> CircuitState:
        """Feed one gateway outcome; returns the new state."""
        if not transient:
            self.consecutive_failures = 0
            if self.state is not CircuitState.CLOSED:
                self.state = CircuitState.CLOSED
                self.cooldown = self.base_cooldown
                self.opened_at = None
            return self.state
        self.consecutive_failures += 1
        if self.state is CircuitState.HALF_OPEN:
            self.cooldown = min(self.cooldown * 2, self.max_cooldown)
            self._open(now)
        elif self.state is CircuitState.CLOSED and self.consecutive_failures >= self.threshold:
            self._open(now)
        return self.state

    def _open(self, now: float) -> None:
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
