"""A gateway rate limiter per worker: paced slots, a share of the namespace's limit, AIMD.

``PAYPROC_GATEWAY_RATE_LIMIT`` is a rate for the whole namespace. Each worker sends at most
``limit / peers`` requests per second (``peers`` is counted through the broker, see
``processor.protection.peers``), so the workers together hold the limit whatever their number.

On top of that share the worker adapts, as TCP does: a 429 halves its rate (multiplicative
decrease, at most once a second) and pauses *every* sender of the worker until the
``Retry-After`` has passed, not only the payment that got it; then the rate climbs back to
the share linearly (additive increase, the whole share in ``recovery_seconds``). A share
that grows because a peer left is taken at once when no 429 came recently.

``RateCore`` is pure (time is passed in): it hands out send times ("slots") spaced
``1 / rate`` apart, allowing a burst of ``burst_seconds`` worth of slots after idleness.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

MIN_SHARE = 0.1
"""The rate never drops below this fraction of the share, so a worker always makes progress."""
DECREASE_EVERY = 1.0
"""At most one halving per this many seconds: the 429s of requests already in flight when the
first one arrived say the same thing again (TCP halves once per round trip)."""


@dataclass
class RateCore:
    ceiling: float
    """Requests per second this worker may send (its share of the namespace's limit)."""
    burst_seconds: float = 0.05
    recovery_seconds: float = 20.0
    """After a 429 the rate climbs back by ``ceiling / recovery_seconds`` per second."""
    quiet_seconds: float = 5.0
    """A larger share (a peer left) is taken at once if no 429 came for this long."""
    rate: float = field(init=False)
    limited: int = field(default=0, init=False)
    _next: float = field(default=float("-inf"), init=False)
    _updated: float | None = field(default=None, init=False)
    _decreased_at: float = field(default=float("-inf"), init=False)
    pause_until: float = field(default=float("-inf"), init=False)
    """Senders wait until then (the latest ``Retry-After``); a slot inside it is taken again."""
    respaced_at: float = field(default=float("-inf"), init=False)
    """When the rate last went down: slots reserved before then, spaced for the old rate,
    are taken again (otherwise a backlog of waiters keeps the old pace for a while)."""

    def __post_init__(self) -> None:
        self.rate = self.ceiling

    def set_ceiling(self, ceiling: float, now: float) -> None:
        """A new share (peers joined or left): the rate follows it down at once; up at once
        too unless a 429 came recently (then it climbs additively)."""
        self._grow(now)
        raised = ceiling > self.ceiling
        self.ceiling = ceiling
        if ceiling < self.rate:
            self.rate = ceiling
            self._respace(now)
        elif raised and now - self._decreased_at >= self.quiet_seconds:
            self.rate = ceiling

    def reserve(self, now: float) -> float:
        """Take the next send slot; returns the time to send at (``now`` or later)."""
        self._grow(now)
        earliest = max(now - self.burst_seconds, self.pause_until)
        slot = max(self._next, earliest)
        self._next = slot + 1.0 / self.rate
        return max(slot, now)

    def rate_limited(self, retry_after: float | None, now: float) -> None:
        """A 429: pause every sender until ``Retry-After`` and halve the rate (once per pause)."""
        self.limited += 1
        pause = retry_after if retry_after is not None and retry_after > 0 else 1.0 / self.rate
        self._grow(now)
        if now - self._decreased_at >= max(pause, DECREASE_EVERY):
            self.rate = max(self.rate / 2, self.ceiling * MIN_SHARE)
            self._decreased_at = now
            self._respace(now)
        until = now + pause
        if until > self.pause_until:
            self.pause_until = until
            self._next = max(self._next, until)

    def _respace(self, now: float) -> None:
        self.respaced_at = now
        self._next = min(self._next, now)

    def still_valid(self, slot: float, reserved_at: float) -> bool:
        """A slot is used only if no pause covers it and the rate did not drop since."""
        return slot >= self.pause_until and (
            reserved_at >= self.respaced_at or slot <= self.respaced_at
        )

    def _grow(self, now: float) -> None:
        if self._updated is not None and self.rate < self.ceiling:
            step = self.ceiling * (now - self._updated) / self.recovery_seconds
            self.rate = min(self.ceiling, self.rate + step)
        self._updated = now


class RateLimiter:
    """The asyncio face of ``RateCore``: ``await acquire()`` before each gateway request."""

    def __init__(self, limit: float, burst_seconds: float = 0.05) -> None:
        self.limit = limit
        self.peers = 1
        self.core = RateCore(limit, burst_seconds)

    def share_for(self, peers: int) -> None:
        """``peers`` workers (this one included) share the namespace's limit."""
        self.peers = max(peers, 1)
        self.core.set_ceiling(self.limit / self.peers, asyncio.get_running_loop().time())

    async def acquire(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            slot = self.core.reserve(now)
            if slot > now:
                await asyncio.sleep(slot - now)
            if self.core.still_valid(slot, now):
                return
            # A 429 paused the senders, or the share shrank, while this one waited.

    def rate_limited(self, retry_after: float | None) -> None:
        self.core.rate_limited(retry_after, asyncio.get_running_loop().time())
