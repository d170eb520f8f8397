"""What the replay-job capabilities need from the database, as one typed port.

The DLQ entries themselves are read and claimed through ``dlq_admin.ports`` (the same
``ReplayStore`` every replay uses); this port holds the jobs, their frozen entries, the
lease that lets one admin process run a job, and the retention purge. Adapter:
``dlq_admin.jobs.store.SqlJobStore``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from dlq_admin.jobs.model import Figures, Job, JobEntry, NewJob
from dlq_admin.rows import ClaimedEntry
from schemas.replay_jobs import JobState


class JobStore(Protocol):
    # ---- jobs --------------------------------------------------------------------------

    async def create_job(self, job: NewJob) -> None:
        """Store the job and its frozen entries (positions 0.. in the order given), one
        transaction."""
        ...

    async def get_job(self, job_id: str) -> Job | None: ...

    async def list_jobs(self, limit: int, before: tuple[datetime, str] | None) -> list[Job]:
        """Jobs newest first, after the cursor ``(created_at, id)``."""
        ...

    async def figures(self, job_ids: Sequence[str]) -> dict[str, Figures]:
        """Each job's progress, counted from its entries in one statement."""
        ...

    async def canary_figures(self, job_id: str, size: int) -> Figures:
        """The progress of the job's first ``size`` entries (its canary)."""
        ...

    async def set_state(
        self,
        job_id: str,
        state: JobState,
        *,
        only_from: Sequence[JobState],
        paused_reason: str | None = None,
        canary_done: bool | None = None,
        self_paused: bool = False,
    ) -> bool:
        """Move the job to ``state`` if it is in one of ``only_from``; True if it moved.
        ``self_paused``: the job pauses itself (not an operator). A final state sets
        ``finished_at`` and drops the lease."""
        ...

    async def mark_canary_done(self, job_id: str) -> None: ...

    async def mark_started(self, job_id: str) -> None:
        """Set ``started_at`` (the first publish) unless it is set."""
        ...

    async def running_jobs(self) -> list[str]:
        """Ids of the jobs in state ``running``."""
        ...

    async def active_jobs(self) -> list[Job]:
        """Jobs not final yet (running or paused), oldest first."""
        ...

    async def following_jobs(self) -> list[str]:
        """Ids of paused or cancelled jobs that still have published payments to follow."""
        ...

    # ---- the lease ---------------------------------------------------------------------

    async def acquire_lease(self, job_id: str, owner: str, until: datetime) -> bool:
        """Take the job's lease if it is running and free, expired or already ``owner``'s."""
        ...

    async def renew_lease(self, job_id: str, owner: str, until: datetime) -> bool:
        """Extend ``owner``'s lease; False if the lease is no longer ``owner``'s."""
        ...

    async def release_lease(self, job_id: str, owner: str) -> None: ...

    # ---- frozen entries ----------------------------------------------------------------

    async def entries_in_state(self, job_id: str, state: str, limit: int) -> list[JobEntry]:
        """The job's entries in ``state``, in publishing order."""
        ...

    async def skip_entries(self, job_id: str, notes: Mapping[int, str]) -> None:
        """``waiting -> skipped`` with the reason, by position."""
        ...

    async def claim_entries(
        self, job_id: str, entries: Sequence[JobEntry], stale_before: datetime
    ) -> dict[str, ClaimedEntry]:
        """One transaction: claim the DLQ entries (``parked -> replaying``, as every replay
        does) and mark the job's entries ``claimed`` for exactly the ones claimed. Returns
        the claimed entries by entry id."""
        ...

    async def settle_entries(
        self, job_id: str, published: Sequence[int], unpublished: Sequence[int]
    ) -> None:
        """By position: ``claimed -> published`` (the broker confirmed) and ``claimed ->
        waiting`` (it did not; the DLQ entry went back to ``parked``)."""
        ...

    async def follow(self, job_id: str) -> None:
        """``published -> succeeded`` for payments now final, ``published -> failed`` for
        entries parked again (a DLQ entry names them in ``replay_of``)."""
        ...

    async def entry_statuses(self, entry_ids: Sequence[str]) -> dict[str, str]:
        """The current status of these DLQ entries, by id."""
        ...

    # ---- retention ---------------------------------------------------------------------

    async def purgeable(self, before: datetime) -> int:
        """How many discarded or replayed entries were last changed before ``before``."""
        ...

    async def purge(self, before: datetime, batch: int) -> int:
        """Delete up to ``batch`` discarded or replayed entries last changed before
        ``before``; never a parked or replaying one. Returns how many were deleted."""
        ...

    async def purge_jobs(self, before: datetime, batch: int) -> int:
        """Delete up to ``batch`` completed or cancelled jobs finished before ``before``, with
        their frozen entries; never a running or paused one. Returns how many jobs."""
        ...
