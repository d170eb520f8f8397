"""30 % transient gateway failures with a short retry ladder: goodput and retry-delay accuracy.

The fake gateway answers 503 *before* charging to 30 % of requests (seeded); payproc sends
each such payment through its TTL retry queues (ladder ``RETRY_DELAYS``, ``MAX_ATTEMPTS``
attempts) back to the request queue until it succeeds. Two runs, both on 1 worker:

* **backlog**: the usual pre-filled drain of ``count`` payments. Goodput is succeeded
  payments per second over the whole drain (including the tail where the last retries wait
  out their delays) and in steady state (10th to 90th percentile of completions); the
  reference is the zero-failure drain of the same configuration in the same run. Retry
  delays are measured too, but a retry re-enters the *back* of the request queue, so under
  a backlog it also waits for the backlog ahead of it;
* **paced**: payments published at a steady rate below capacity (the queue stays short), so
  the measured delay is the retry mechanism's own: TTL expiry, dead-lettering, redelivery.

Retry-delay accuracy, from the attempt history the worker stores (``payment_attempts``):
for every retry, lateness = (start of attempt k+1) - (end of attempt k) - (the ladder's
delay after k failures). Target: every retry within its delay + 1 s (0 <= lateness <= 1 s).
"""

from __future__ import annotations

import itertools
import statistics
from collections import defaultdict
from dataclasses import replace

from bench.database import Database, epoch
from bench.figures import RetryDelays, Run
from bench.payproc_runs import PayprocConfig, drain

RETRY_DELAYS = "0.5,1,2"
MAX_ATTEMPTS = 10
FAILURE_RATE = 0.3


def delay_after(failures: int, delays: tuple[float, ...]) -> float:
    """The ladder's delay after ``failures`` failed attempts (the last delay repeats)."""
    return delays[min(max(failures, 1), len(delays)) - 1]


def lateness(db: Database, delays: tuple[float, ...]) -> tuple[list[float], int]:
    """Seconds each retry started after its due time (negative: early), and how many
    retries were "spared" (the circuit breaker held the gateway for down: the attempt number
    stays, the delay is the ladder's first)."""
    rows = db.execute("SELECT payment_id, attempt, started_at, finished_at FROM payment_attempts")
    by_payment: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
    for payment_id, attempt, started, finished in rows:
        start, end = epoch(started), epoch(finished)
        if start is not None and end is not None:
            by_payment[str(payment_id)].append((start, end, int(attempt)))
    late: list[float] = []
    spared = 0
    for attempts in by_payment.values():
        attempts.sort()
        for (_, end, number), (start, _, next_number) in itertools.pairwise(attempts):
            if next_number == number:
                spared += 1
                due = delays[0]
            else:
                due = delay_after(number, delays)
            late.append(start - end - due)
    return late, spared


def summarize(late: list[float], spared: int = 0) -> RetryDelays:
    if not late:
        return RetryDelays(spared=spared)
    ordered = sorted(late)
    within = sum(1 for x in late if -0.05 <= x <= 1.0)
    return RetryDelays(
        retries=len(late),
        within_pct=round(100 * within / len(late), 2),
        late_p50_s=round(statistics.median(ordered), 3),
        late_p95_s=round(ordered[int(0.95 * (len(ordered) - 1))], 3),
        late_max_s=round(ordered[-1], 3),
        early=sum(1 for x in late if x < -0.05),
        spared=spared,
    )


async def run(
    db_kind: str, count: int, paced_count: int, paced_rate: float
) -> tuple[Run, Run | None]:
    """The backlog run and (when ``paced_count``) the paced run."""
    delays = tuple(float(d) for d in RETRY_DELAYS.split(","))

    async def inspect(db: Database, measured: Run) -> None:
        late, spared = lateness(db, delays)
        measured.delays = summarize(late, spared)

    base = PayprocConfig(
        workers=1,
        db=db_kind,
        count=count,
        failure_rate=FAILURE_RATE,
        retry_delays=RETRY_DELAYS,
        max_attempts=MAX_ATTEMPTS,
        seed=5,
    )
    backlog = await drain(base, inspect)
    paced = None
    if paced_count:
        paced_config = replace(base, count=paced_count, seed=6, paced_rate=paced_rate)
        paced = await drain(paced_config, inspect)
    return backlog, paced
