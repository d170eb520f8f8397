"""Retention: discarded and replayed DLQ entries are kept ``keep`` after their last change,
then purged by the admin (the count is logged). Parked and ``replaying`` entries are never
purged. Completed and cancelled replay jobs (with their frozen entry lists, one row per
entry) are kept ``keep`` after they finished, then purged the same way; running and paused
jobs never are. ``due_within`` says how many entries the next purges will remove, for the stats
("N entries will be purged in the next 24 h").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from dlq_admin.jobs.ports import JobStore
from schemas.tables import utcnow

log = logging.getLogger("payproc.admin")

BATCH = 1000
"""Entries deleted per transaction (short transactions next to the ingest's writes)."""
JOB_BATCH = 10
"""Finished jobs deleted per transaction (each with up to its whole frozen selection)."""


class Retention:
    def __init__(
        self,
        store: JobStore,
        *,
        keep: timedelta,
        clock: Callable[[], datetime] = utcnow,
        observe: Callable[[int], None] = lambda _n: None,
    ) -> None:
        self.store = store
        self.keep = keep
        self._clock = clock
        self._observe = observe

    @property
    def days(self) -> float:
        return self.keep.total_seconds() / 86_400

    async def purge_once(self) -> int:
        """Delete every entry (and finished job) past retention now; returns (and logs) how
        many entries."""
        before = self._clock() - self.keep
        purged = await self._purge(
            self.store.purge, before, BATCH, "discarded or replayed DLQ entries", "purged"
        )
        self._observe(purged)
        await self._purge(
            self.store.purge_jobs, before, JOB_BATCH, "finished replay jobs", "purged_jobs"
        )
        return purged

    async def _purge(
        self,
        purge: Callable[[datetime, int], Awaitable[int]],
        before: datetime,
        batch: int,
        what: str,
        field: str,
    ) -> int:
        """Call ``purge`` batch after batch until a batch comes back short; log the total."""
        purged = 0
        while True:
            count = await purge(before, batch)
            purged += count
            if count < batch:
                break
        if purged:
            log.info("purged %d %s older than %s", purged, what, self.keep, extra={field: purged})
        return purged

    async def due_within(self, horizon: timedelta = timedelta(hours=24)) -> int:
        """Entries that pass retention within ``horizon`` from now (purged by then)."""
        return await self.store.purgeable(self._clock() + horizon - self.keep)

    async def run(self, interval: float) -> None:
        """Purge every ``interval`` seconds until cancelled; a failed purge is retried."""
        while True:
            try:
                await self.purge_once()
            except Exception:
                log.exception("DLQ retention purge failed; retrying later")
            await asyncio.sleep(interval)  # periodic work, not synchronisation
