"""Worker memory: peak RSS of one payproc worker process while it drains a 50,000 backlog.

One ``python -m processor worker`` process (default prefetch 100, the embedded SQLite
database) drains ``count`` pre-filled payments; its RSS is sampled every 100 ms (psutil) from
start to the last payment final, and the peak is reported. A worker that held the backlog in
memory, leaked per payment, or let a cache grow unbounded would show it here; the backlog
itself must stay in the broker, bounded by prefetch. The drain rate of this long run is
reported too (a slowdown as tables grow would show against the 20,000 figure).
"""

from __future__ import annotations

from bench.figures import Run
from bench.payproc_runs import PayprocConfig, drain


async def run(count: int, db_kind: str = "sqlite") -> Run:
    return await drain(PayprocConfig(workers=1, db=db_kind, count=count, seed=3))
