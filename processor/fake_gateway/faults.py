"""The fake gateway's gateway-protection knobs: faults that follow payments or merchants, and
a rate limit the gateway enforces itself.

* ``sticky_failure_share``: that share of payment ids (chosen by a hash of the idempotency
  key, so the same payments every time: ``sticky_fails``) get a 503 on every attempt, while
  every other payment succeeds;
* ``failing_merchants``: every charge of these merchants gets a 503;
* ``rate_limit``: requests per second the gateway accepts (a token bucket holding
  ``rate_limit_burst`` seconds' worth); above it a 429 with ``Retry-After`` = the seconds until
  a token is free. ``FaultState`` counts those 429s and when requests arrived, for tests and
  the bench.
"""

from __future__ import annotations

import argparse
import time
import zlib
from dataclasses import dataclass
from typing import Any

from processor.fake_server import is_number

_BUCKETS = 10_000


def sticky_fails(payment_id: str, share: float) -> bool:
    """True when the payment is one of the ``share`` that always fail (stable per id)."""
    return share > 0 and zlib.crc32(payment_id.encode()) % _BUCKETS < share * _BUCKETS


def validate_knobs(
    sticky_failure_share: object, failing_merchants: object, rate_limit: object, burst: object
) -> None:
    """Raise ``ValueError`` naming the first protection knob out of range."""
    if not is_number(sticky_failure_share) or not 0 <= sticky_failure_share <= 1:  # type: ignore[operator]
        raise ValueError(
            f"sticky_failure_share must be a number between 0 and 1, got {sticky_failure_share!r}"
        )
    if not isinstance(failing_merchants, list | tuple) or not all(
        isinstance(m, str) for m in failing_merchants
    ):
        raise ValueError(f"failing_merchants must be a list of strings, got {failing_merchants!r}")
    if not is_number(rate_limit) or rate_limit < 0:  # type: ignore[operator]
        raise ValueError(f"rate_limit must be requests/s >= 0 (0 = none), got {rate_limit!r}")
    if not is_number(burst) or burst <= 0:  # type: ignore[operator]
        raise ValueError(f"rate_limit_burst must be seconds > 0, got {burst!r}")


@dataclass(slots=True)
class FaultState:
    """The gateway's own rate limiter and what it counted."""

    limited: int = 0
    """429s answered by the rate limiter (not by ``rate_limit_rate``)."""
    sticky_503: int = 0
    first_at: float | None = None
    last_at: float | None = None
    _tokens: float = 0.0
    _updated: float | None = None

    def admit(self, rate: float, burst_seconds: float) -> float | None:
        """Count one request; ``None`` if it may go on, else the seconds until a token."""
        now = time.monotonic()
        if self.first_at is None:
            self.first_at = now
        self.last_at = now
        if rate <= 0:
            return None
        capacity = max(1.0, rate * burst_seconds)
        if self._updated is None:
            self._tokens = capacity
        else:
            self._tokens = min(capacity, self._tokens + (now - self._updated) * rate)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        self.limited += 1
        return (1.0 - self._tokens) / rate

    def sticky(self, share: float, failing_merchants: list[str], key: str, merchant: str) -> bool:
        """True when this charge fails whatever happens (payment- or merchant-sticky)."""
        if merchant in failing_merchants or sticky_fails(key, share):
            self.sticky_503 += 1
            return True
        return False

    def reset(self) -> None:
        self.limited = self.sticky_503 = 0
        self.first_at = self.last_at = self._updated = None

    def stats(self) -> dict[str, Any]:
        span = (self.last_at - self.first_at) if self.first_at and self.last_at else 0.0
        return {"rate_limited": self.limited, "sticky_503": self.sticky_503, "span_s": span}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sticky-failure-share",
        type=float,
        default=0.0,
        help="share 0..1 of payment ids that get a 503 on every attempt",
    )
    parser.add_argument(
        "--failing-merchants",
        default="",
        help="comma-separated merchant ids whose every charge gets a 503",
    )
    parser.add_argument(
        "--rate-limit",
        type=float,
        default=0.0,
        help="requests/s accepted; above it 429 with Retry-After (0 = no limit)",
    )
    parser.add_argument(
        "--rate-limit-burst",
        type=float,
        default=0.25,
        help="seconds of requests the rate limit lets through at once (0.25)",
    )


def knobs_from_args(ns: argparse.Namespace) -> dict[str, Any]:
    return {
        "sticky_failure_share": ns.sticky_failure_share,
        "failing_merchants": [m for m in ns.failing_merchants.split(",") if m],
        "rate_limit": ns.rate_limit,
        "rate_limit_burst": ns.rate_limit_burst,
    }
