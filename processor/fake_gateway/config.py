"""The fake gateway's knobs (``FakeGatewayConfig``) and the ranges each one accepts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from processor.fake_gateway import faults
from processor.fake_server import FaultKnobs, is_number

__all__ = ["BOOL_KNOBS", "RATE_KNOBS", "SECONDS_KNOBS", "FakeGatewayConfig", "knob_problem"]

RATE_KNOBS: Final = (
    "failure_rate",
    "rate_limit_rate",
    "timeout_rate",
    "charge_then_timeout_rate",
    "lookup_failure_rate",
)
SECONDS_KNOBS: Final = ("retry_after", "hang_seconds", "latency")
BOOL_KNOBS: Final = ("outage", "by_amount")


def knob_problem(name: str, value: object) -> str | None:
    """What is wrong with ``value`` for a rate or seconds knob, or ``None`` if it is valid."""
    if name in RATE_KNOBS and (not is_number(value) or not 0.0 <= value <= 1.0):  # type: ignore[operator]
        return "must be a number between 0 and 1"
    if name in SECONDS_KNOBS and (not is_number(value) or value < 0):  # type: ignore[operator]
        return "must be a number of seconds >= 0"
    return None


@dataclass(slots=True)
class FakeGatewayConfig(FaultKnobs):
    """The knobs of the fake gateway; all of them but ``seed`` can be changed at runtime.

    A server error is a 503, a timeout before charging a 504."""

    latency: float = 0.0
    """Seconds added to every ``/v1/charges`` request."""
    outage: bool = False
    """Every ``/v1/charges`` request answers 503 without charging."""
    by_amount: bool = True
    """Deterministic outcomes by ``amount % 1000`` (400, 401, 402, 403, 404, 409, 422)."""
    seed: int | None = None
    lookup_failure_rate: float = 0.0
    """Probability of a lookup (``GET /v1/charges``) answering 503: "cannot say now"."""
    # Gateway-protection knobs (see processor.fake_gateway.faults).
    sticky_failure_share: float = 0.0
    """Share of payment ids (stable, by hash) that get a 503 on every attempt."""
    failing_merchants: list[str] = field(default_factory=list)
    """Merchants whose every charge gets a 503."""
    rate_limit: float = 0.0
    """Requests/s accepted (token bucket); above it 429 with Retry-After. 0 = no limit."""
    rate_limit_burst: float = 0.25
    """Seconds' worth of requests the rate limit's bucket holds."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first knob whose value is out of range."""
        for name in (*RATE_KNOBS, *SECONDS_KNOBS):
            value = getattr(self, name)
            problem = knob_problem(name, value)
            if problem is not None:
                raise ValueError(f"{name} {problem}, got {value!r}")
        for name in BOOL_KNOBS:
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false, got {value!r}")
        seed = self.seed
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ValueError(f"seed must be an integer or null, got {seed!r}")
        faults.validate_knobs(
            self.sticky_failure_share,
            self.failing_merchants,
            self.rate_limit,
            self.rate_limit_burst,
        )
