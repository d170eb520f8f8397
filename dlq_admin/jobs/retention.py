"""Retention: discarded and replayed DLQ entries are kept ``keep`` after their last change,
then purged by the admin (the count is logged). Parked and ``replaying`` entries are never
purged. ``due_within`` says how many entries the next purges will remove, for the stats
("N entries will be purged in the next 24 h").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from dlq_admin.jobs.ports import JobStore
from schemas.tables import utcnow

log = logging.getLogger("payproc.admin")

BATCH = 1000
"""Entries deleted per transaction (short transactions next to the ingest's writes)."""


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
        """Delete every entry past retention now; returns (and logs) how many."""
        before = self._clock() - self.keep
        purged = 0
        while True:
            count = await self.store.purge(before, BATCH)
            purged += count
            if count < BATCH:
                break
        if purged:
            log.info(
                "purged %d discarded or replayed DLQ entries older than %s",
                purged,
                self.keep,
                extra={"purged": purged},
            )
        self._observe(purged)
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
