"""The measured end of a drain run, shared by payproc's (``bench.payproc_runs``) and the
peers' (``bench.peers.runs``) so both are timed and checked the same way.

``measure_drain`` waits until every payment row is final, stops the CPU and RSS accounting,
and builds the ``Run`` from the drain window, the rows' statuses, the fake gateway's ledger and
what is left in the queue; a double charge (or, when asked, a payment that did not succeed)
fails the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.accounting import CpuWatch, RssSampler
from bench.common import BenchError, Gateway, Proc, log, queue_depth
from bench.database import Database, wait_drained
from bench.figures import DrainChecks, Run


async def measure_drain(
    *,
    label: str,
    count: int,
    db: Database,
    final: Sequence[str],
    window_start: str,
    within: float,
    procs: Sequence[Proc],
    connection: Any,
    queue: str,
    gateway: Gateway,
    cpu: CpuWatch,
    sampler: RssSampler,
    publish_rate: float,
    all_succeed: bool,
) -> Run:
    """Wait until ``count`` rows of ``payments`` have a status in ``final``, then measure.

    ``window_start`` is the column the drain window is timed from; ``procs`` are watched while
    waiting (one exiting fails the run); ``cpu`` and ``sampler`` were started when the workers
    began consuming. Raises ``BenchError`` on any double charge and, with ``all_succeed``,
    unless all ``count`` payments succeeded.
    """
    await wait_drained(
        db,
        "payments",
        final,
        count,
        within=within,
        procs=procs,
        progress=lambda n: log(f"{label}: {n}/{count} final"),
    )
    usage = cpu.stop()
    await sampler.stop()
    start, end = db.window(window_start)
    statuses = db.status_counts()
    stats = gateway.stats()
    depth, _ = await queue_depth(connection, queue)
    run = Run(
        label=label,
        count=count,
        seconds=end - start,
        rss_mb=round(sampler.peak_mb, 1),
        cpu=usage,
        checks=DrainChecks(
            double_charged=len(stats["double_charged"]),
            charges=stats["charges"],
            gateway_requests=stats["requests"],
            statuses=statuses,
            queue_left=depth,
        ),
        publish_rate=round(publish_rate),
        steady_rate=round(db.steady_rate(["succeeded"])),
    )
    if stats["double_charged"]:
        raise BenchError(f"double charges: {len(stats['double_charged'])}")
    if all_succeed and statuses.get("succeeded", 0) != count:
        raise BenchError(f"not every payment succeeded: {statuses}")
    return run
