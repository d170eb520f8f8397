"""Measured runs and figures: a ``Run`` is one measured drain, a ``Figure`` the median of
several runs of one configuration (or the reason it has none)."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.common import log


@dataclass(frozen=True)
class DrainChecks:
    """What the harness verified after a drain: the gateway's ledger, the rows' statuses
    and what was left in the queue."""

    double_charged: int = 0
    charges: int = 0
    gateway_requests: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    queue_left: int = 0


@dataclass(frozen=True)
class RetryDelays:
    """How late each retry started against its ladder delay (``bench.retries``): lateness
    in seconds, the share within delay + 1 s, retries started early, and retries "spared"
    by the circuit breaker (the attempt number stays, the delay is the ladder's first)."""

    retries: int = 0
    within_pct: float = 0
    late_p50_s: float = 0
    late_p95_s: float = 0
    late_max_s: float = 0
    early: int = 0
    spared: int = 0


NO_DELAYS = RetryDelays()


@dataclass(frozen=True)
class RateAccuracy:
    """The gateway's request rate against ``PAYPROC_GATEWAY_RATE_LIMIT`` (``bench.rate_limit``):
    the limit, the measured requests/s and its share of the limit, and the 429s the gateway's
    own limiter answered (count and share of all its requests)."""

    limit: float
    rate: float
    accuracy_pct: float
    gateway_429: int
    gateway_429_pct: float

    @property
    def deviation_pct(self) -> float:
        """How far the measured rate is from the limit, in percent of it, either way."""
        return abs(self.accuracy_pct - 100.0)


@dataclass
class Run:
    """One measured run: ``count`` payments (or messages) in ``seconds``, with what the
    harness checked, the peak RSS of a worker process, and the CPU split by owner
    (``bench.accounting.CpuWatch``)."""

    label: str
    count: int
    seconds: float
    checks: DrainChecks = field(default_factory=DrainChecks)
    rss_mb: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    publish_rate: float = 0.0  # messages/s the queue was filled at
    goodput: float = 0.0  # succeeded payments/s over the whole drain
    steady_rate: float = 0.0  # succeeded payments/s from the 10th to the 90th percentile
    circuit_opens: int = 0  # times a worker's circuit breaker opened
    delays: RetryDelays | None = None  # with injected failures: retry-delay accuracy
    limiter: RateAccuracy | None = None  # with a gateway rate limit: its accuracy

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    def cpu_ms(self, group: str) -> float:
        """Milliseconds of CPU ``group`` spent per payment during the run."""
        return 1000 * self.cpu.get(f"{group}_cpu_s", 0.0) / self.count if self.count else 0.0

    def system_cpu_ms(self) -> float:
        """Machine CPU per payment for the job itself: workers, broker, database, gateway."""
        return sum(self.cpu_ms(g) for g in ("workers", "broker", "db", "gateway"))


@dataclass
class Figure:
    """The median of several runs of one configuration (or the reason it has none)."""

    key: str
    label: str
    runs: list[Run] = field(default_factory=list)
    error: str | None = None
    unit: str = "payments/s"

    @property
    def ok(self) -> bool:
        return bool(self.runs) and self.error is None

    @property
    def rate(self) -> float:
        return statistics.median(r.rate for r in self.runs) if self.runs else 0.0

    @property
    def spread(self) -> tuple[float, float]:
        rates = [r.rate for r in self.runs]
        return (min(rates), max(rates)) if rates else (0.0, 0.0)

    def median_run(self) -> Run | None:
        if not self.runs:
            return None
        ordered = sorted(self.runs, key=lambda r: r.rate)
        return ordered[len(ordered) // 2]


async def repeat(
    key: str,
    label: str,
    times: int,
    once: Callable[[int], Any],
) -> Figure:
    """Run ``once(i)`` ``times`` times; a failure ends the figure with its reason."""
    figure = Figure(key, label)
    for index in range(times):
        try:
            run: Run = await once(index)
        except Exception as exc:
            figure.error = f"{type(exc).__name__}: {str(exc)[:600]}"
            log(f"{label}: run {index + 1} FAILED: {figure.error}")
            break
        figure.runs.append(run)
        log(
            f"{label}: run {index + 1}/{times}: {run.rate:,.0f}/s "
            f"({run.count} in {run.seconds:.2f} s; cpu {run.cpu}; {run.checks})"
        )
    return figure
