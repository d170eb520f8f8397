"""The ``replay_jobs`` side of ``SqlJobStore``: jobs, their figures, state and lease.

* A job and its frozen entries are inserted in one transaction, entries in batches.
* A job's figures are its rows of ``replay_job_counts``, changed (``add_counts``) in the
  transaction that moves its entries: one read of a few rows, and they add up at every read.
* The lease is a conditional ``UPDATE`` of the job row: of two admins only one sees
  ``rowcount == 1``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import RowMapping, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dlq_admin.jobs.model import EntryState, Figures, Job, NewJob
from dlq_admin.store._base import SqlBase
from schemas.replay_job_tables import ReplayJobCountRow, ReplayJobEntryRow, ReplayJobRow
from schemas.replay_jobs import Canary, JobSelection, JobState
from schemas.tables import utcnow

jobs = ReplayJobRow.__table__  # type: ignore[attr-defined]
job_entries = ReplayJobEntryRow.__table__  # type: ignore[attr-defined]
job_counts = ReplayJobCountRow.__table__  # type: ignore[attr-defined]
_INSERT_BATCH = 1000

Counts = Counter[tuple[str, str]]
"""Changes of a job's counts: ``{(state, note): entries}`` (``note`` is ``''`` but for
skipped entries)."""


async def add_counts(conn: AsyncConnection, insert: Any, job_id: str, counts: Counts) -> None:
    """Add ``counts`` to the job's counts in one statement, inside the transaction that moved
    the entries (an upsert: the first entry of a state, or of a skip reason, adds its row).
    Called after the entries moved, so the count rows are the last rows it locks."""
    c = job_counts.c
    rows = [
        {"job_id": job_id, "state": state, "note": note, "entries": n}
        for (state, note), n in sorted(counts.items())
        if n
    ]
    if rows:
        statement = insert(job_counts).values(rows)
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=[c.job_id, c.state, c.note],
                set_={"entries": c.entries + statement.excluded.entries},
            )
        )


def _job(m: RowMapping) -> Job:
    canary = (
        Canary(size=m["canary_size"], max_failure_share=m["canary_max_failure_share"] or 0.0)
        if m["canary_size"]
        else None
    )
    return Job(
        id=m["id"],
        state=JobState(m["state"]),
        selection=JobSelection.model_validate_json(m["selection"]),
        rate=float(m["rate"]),
        ramp=orjson.loads(m["ramp"]) if m["ramp"] else None,
        canary=canary,
        canary_done=bool(m["canary_done"]),
        paused_reason=m["paused_reason"],
        self_paused=bool(m["self_paused"]),
        total=int(m["total"]),
        created_by=m["created_by"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        started_at=m["started_at"],
        last_published_at=m["last_published_at"],
        finished_at=m["finished_at"],
        lease_owner=m["lease_owner"],
        lease_expires_at=m["lease_expires_at"],
    )


class SqlJobs(SqlBase):
    """The job rows of ``JobStore``."""

    async def create_job(self, job: NewJob) -> None:
        now = utcnow()
        async with self._tx() as conn:
            await conn.execute(
                jobs.insert().values(
                    id=job.id,
                    namespace=self._ns,
                    state=JobState.RUNNING.value,
                    selection=job.selection.model_dump_json(exclude_none=True),
                    rate=job.rate,
                    ramp=orjson.dumps(job.ramp).decode() if job.ramp else None,
                    canary_size=job.canary.size if job.canary else None,
                    canary_max_failure_share=(job.canary.max_failure_share if job.canary else None),
                    canary_done=job.canary is None,
                    self_paused=False,
                    total=len(job.entries),
                    created_by=job.created_by,
                    created_at=now,
                    updated_at=now,
                    finished_at=None if job.entries else now,
                )
            )
            if not job.entries:
                await conn.execute(
                    update(jobs).where(jobs.c.id == job.id).values(state=JobState.COMPLETED.value)
                )
            for start in range(0, len(job.entries), _INSERT_BATCH):
                rows = [
                    {
                        "job_id": job.id,
                        "position": start + i,
                        "entry_id": e.entry_id,
                        "payment_id": e.payment_id,
                        "merchant_id": e.merchant_id,
                        "state": EntryState.WAITING.value,
                    }
                    for i, e in enumerate(job.entries[start : start + _INSERT_BATCH])
                ]
                await conn.execute(job_entries.insert(), rows)
            if job.entries:
                await conn.execute(
                    job_counts.insert().values(
                        job_id=job.id,
                        state=EntryState.WAITING.value,
                        note="",
                        entries=len(job.entries),
                    )
                )

    async def get_job(self, job_id: str) -> Job | None:
        async with self._tx() as conn:
            row = (
                await conn.execute(
                    select(jobs).where(jobs.c.namespace == self._ns, jobs.c.id == job_id)
                )
            ).first()
        return _job(row._mapping) if row is not None else None

    async def list_jobs(self, limit: int, before: tuple[datetime, str] | None) -> list[Job]:
        c = jobs.c
        conditions: list[Any] = [c.namespace == self._ns]
        if before is not None:
            at, job_id = before
            conditions += [c.created_at <= at, or_(c.created_at < at, c.id < job_id)]
        statement = (
            select(jobs).where(*conditions).order_by(c.created_at.desc(), c.id.desc()).limit(limit)
        )
        async with self._tx() as conn:
            return [_job(row._mapping) for row in await conn.execute(statement)]

    async def figures(self, job_ids: Sequence[str]) -> dict[str, Figures]:
        if not job_ids:
            return {}
        c = job_counts.c
        counts: dict[str, dict[str, int]] = {job_id: {} for job_id in job_ids}
        skipped: dict[str, dict[str, int]] = {job_id: {} for job_id in job_ids}
        async with self._tx() as conn:
            # One statement (one snapshot) over a few rows per job: the counts add up.
            rows = await conn.execute(
                select(c.job_id, c.state, c.note, c.entries).where(c.job_id.in_(list(job_ids)))
            )
            for job_id, state, note, n in rows:
                by_state = counts[str(job_id)]
                by_state[str(state)] = by_state.get(str(state), 0) + int(n)
                if state == EntryState.SKIPPED.value and n:
                    skipped[str(job_id)][str(note)] = int(n)
        return {
            job_id: Figures.from_counts(sum(c.values()), c, skipped[job_id])
            for job_id, c in counts.items()
        }

    async def canary_figures(self, job_id: str, size: int) -> Figures:
        je = job_entries.c
        async with self._tx() as conn:
            rows = await conn.execute(
                select(je.state, func.count())
                .where(je.job_id == job_id, je.position < size)
                .group_by(je.state)
            )
            counts = {str(state): int(count) for state, count in rows}
        return Figures.from_counts(sum(counts.values()), counts)

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
        now = utcnow()
        values: dict[str, Any] = {
            "state": state.value,
            "updated_at": now,
            "paused_reason": paused_reason,
            "self_paused": self_paused,
        }
        if canary_done is not None:
            values["canary_done"] = canary_done
        if state.is_final:
            values.update(finished_at=now, lease_owner=None, lease_expires_at=None)
        async with self._tx() as conn:
            result = await conn.execute(
                update(jobs)
                .where(
                    jobs.c.namespace == self._ns,
                    jobs.c.id == job_id,
                    jobs.c.state.in_([s.value for s in only_from]),
                )
                .values(**values)
            )
        return bool(result.rowcount == 1)

    async def mark_canary_done(self, job_id: str) -> None:
        async with self._tx() as conn:
            await conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(canary_done=True, updated_at=utcnow())
            )

    async def mark_started(self, job_id: str) -> None:
        async with self._tx() as conn:
            await conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.started_at.is_(None))
                .values(started_at=utcnow())
            )

    async def purge_jobs(self, before: datetime, batch: int) -> int:
        finished = (
            jobs.c.namespace == self._ns,
            jobs.c.state.in_([JobState.COMPLETED.value, JobState.CANCELLED.value]),
            jobs.c.finished_at < before,
        )
        async with self._tx() as conn:
            ids = [
                str(r[0])
                for r in await conn.execute(
                    select(jobs.c.id).where(*finished).order_by(jobs.c.finished_at).limit(batch)
                )
            ]
            if not ids:
                return 0
            await conn.execute(delete(job_entries).where(job_entries.c.job_id.in_(ids)))
            await conn.execute(delete(job_counts).where(job_counts.c.job_id.in_(ids)))
            result = await conn.execute(delete(jobs).where(jobs.c.id.in_(ids), *finished))
        return int(result.rowcount or 0)

    async def running_jobs(self) -> list[str]:
        async with self._tx() as conn:
            rows = await conn.execute(
                select(jobs.c.id)
                .where(jobs.c.namespace == self._ns, jobs.c.state == JobState.RUNNING.value)
                .order_by(jobs.c.created_at)
            )
            return [str(r[0]) for r in rows]

    async def active_jobs(self) -> list[Job]:
        async with self._tx() as conn:
            rows = await conn.execute(
                select(jobs)
                .where(
                    jobs.c.namespace == self._ns,
                    jobs.c.state.in_([JobState.RUNNING.value, JobState.PAUSED.value]),
                )
                .order_by(jobs.c.created_at)
            )
            return [_job(row._mapping) for row in rows]

    async def following_jobs(self) -> list[str]:
        je = job_entries.c
        following = exists().where(je.job_id == jobs.c.id, je.state == EntryState.PUBLISHED.value)
        async with self._tx() as conn:
            rows = await conn.execute(
                select(jobs.c.id).where(
                    jobs.c.namespace == self._ns,
                    jobs.c.state.in_([JobState.PAUSED.value, JobState.CANCELLED.value]),
                    following,
                )
            )
            return [str(r[0]) for r in rows]

    async def acquire_lease(self, job_id: str, owner: str, until: datetime) -> bool:
        c = jobs.c
        now = utcnow()
        async with self._tx() as conn:
            result = await conn.execute(
                update(jobs)
                .where(
                    c.namespace == self._ns,
                    c.id == job_id,
                    c.state == JobState.RUNNING.value,
                    or_(c.lease_owner.is_(None), c.lease_owner == owner, c.lease_expires_at < now),
                )
                .values(lease_owner=owner, lease_expires_at=until)
            )
        return bool(result.rowcount == 1)

    async def renew_lease(self, job_id: str, owner: str, until: datetime) -> bool:
        async with self._tx() as conn:
            result = await conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.lease_owner == owner)
                .values(lease_expires_at=until)
            )
        return bool(result.rowcount == 1)

    async def release_lease(self, job_id: str, owner: str) -> None:
        async with self._tx() as conn:
            await conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.lease_owner == owner)
                .values(lease_owner=None, lease_expires_at=None)
            )
