"""``JobStore`` over async SQLAlchemy (SQLite or PostgreSQL).

* A job and its frozen entries are inserted in one transaction, entries in batches.
* A job's figures are one ``GROUP BY state`` over its entries: they add up at every read.
* The lease is a conditional ``UPDATE`` of the job row: of two admins only one sees
  ``rowcount == 1``.
* Claiming entries for a job updates ``dlq_entries`` (``parked -> replaying``, the claim every
  replay makes) and the job's entries (``waiting -> claimed``) in one transaction, so after a
  crash the job knows which ``replaying`` entries are its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import RowMapping, and_, delete, exists, func, or_, select, update

from dlq_admin.jobs.model import EntryState, Figures, Job, JobEntry, NewJob
from dlq_admin.rows import ClaimedEntry
from dlq_admin.store._base import (
    CLAIM_COLUMNS,
    IN_CHUNK,
    SqlBase,
    entries,
    not_indexed,
    payments,
    to_claimed,
)
from schemas.dlq import EntryStatus
from schemas.replay_job_tables import ReplayJobEntryRow, ReplayJobRow
from schemas.replay_jobs import Canary, JobSelection, JobState
from schemas.tables import utcnow

jobs = ReplayJobRow.__table__  # type: ignore[attr-defined]
job_entries = ReplayJobEntryRow.__table__  # type: ignore[attr-defined]

OK_PAYMENT = ("succeeded", "declined")
"""Payment statuses that end a replayed payment well: the gateway answered for good."""
PURGEABLE = (EntryStatus.DISCARDED.value, EntryStatus.REPLAYED.value)
"""Entry statuses retention may delete (never ``parked`` or ``replaying``)."""
_INSERT_BATCH = 1000


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
        finished_at=m["finished_at"],
        lease_owner=m["lease_owner"],
        lease_expires_at=m["lease_expires_at"],
    )


class SqlJobStore(SqlBase):
    """The ``JobStore`` port for one namespace: ``SqlJobStore(engine, namespace)``."""

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
        je = job_entries.c
        counts: dict[str, dict[str, int]] = {job_id: {} for job_id in job_ids}
        async with self._tx() as conn:
            rows = await conn.execute(
                select(je.job_id, je.state, func.count())
                .where(je.job_id.in_(list(job_ids)))
                .group_by(je.job_id, je.state)
            )
            for job_id, state, count in rows:
                counts[str(job_id)][str(state)] = int(count)
        return {job_id: Figures.from_counts(sum(c.values()), c) for job_id, c in counts.items()}

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

    async def entries_in_state(self, job_id: str, state: str, limit: int) -> list[JobEntry]:
        je = job_entries.c
        async with self._tx() as conn:
            rows = await conn.execute(
                select(je.position, je.entry_id, je.payment_id, je.merchant_id, je.state)
                .where(je.job_id == job_id, je.state == state)
                .order_by(je.position)
                .limit(limit)
            )
            return [
                JobEntry(r.position, r.entry_id, r.payment_id, r.merchant_id, EntryState(r.state))
                for r in rows
            ]

    async def skip_entries(self, job_id: str, notes: Mapping[str, str]) -> None:
        je = job_entries.c
        now = utcnow()
        by_note: dict[str, list[str]] = {}
        for entry_id, note in notes.items():
            by_note.setdefault(note, []).append(entry_id)
        async with self._tx() as conn:
            for note, ids in by_note.items():
                for start in range(0, len(ids), IN_CHUNK):
                    await conn.execute(
                        update(job_entries)
                        .where(
                            je.job_id == job_id,
                            je.entry_id.in_(ids[start : start + IN_CHUNK]),
                            je.state == EntryState.WAITING.value,
                        )
                        .values(state=EntryState.SKIPPED.value, note=note[:64], settled_at=now)
                    )

    async def claim_entries(
        self, job_id: str, entry_ids: Sequence[str], stale_before: datetime
    ) -> dict[str, ClaimedEntry]:
        c = entries.c
        status = not_indexed(c.status)
        claimable = or_(
            status == EntryStatus.PARKED.value,
            and_(status == EntryStatus.REPLAYING.value, c.updated_at < stale_before),
        )
        unique = list(dict.fromkeys(entry_ids))
        claimed: dict[str, ClaimedEntry] = {}
        now = utcnow()
        async with self._tx() as conn:
            for start in range(0, len(unique), IN_CHUNK):
                rows = await conn.execute(
                    update(entries)
                    .where(
                        c.id.in_(unique[start : start + IN_CHUNK]),
                        not_indexed(c.namespace) == self._ns,
                        claimable,
                    )
                    .values(status=EntryStatus.REPLAYING.value, updated_at=now)
                    .returning(*CLAIM_COLUMNS)
                )
                batch = [to_claimed(row._mapping) for row in rows]
                claimed.update((e.id, e) for e in batch)
                if batch:
                    await conn.execute(
                        update(job_entries)
                        .where(
                            job_entries.c.job_id == job_id,
                            job_entries.c.entry_id.in_([e.id for e in batch]),
                        )
                        .values(state=EntryState.CLAIMED.value)
                    )
        return claimed

    async def settle_entries(
        self, job_id: str, published: Sequence[str], unpublished: Sequence[str]
    ) -> None:
        je = job_entries.c
        now = utcnow()
        async with self._tx() as conn:
            for ids, state, at in (
                (published, EntryState.PUBLISHED, now),
                (unpublished, EntryState.WAITING, None),
            ):
                for start in range(0, len(ids), IN_CHUNK):
                    await conn.execute(
                        update(job_entries)
                        .where(
                            je.job_id == job_id,
                            je.entry_id.in_(list(ids[start : start + IN_CHUNK])),
                            je.state == EntryState.CLAIMED.value,
                        )
                        .values(state=state.value, published_at=at)
                    )

    async def follow(self, job_id: str) -> None:
        je = job_entries.c
        now = utcnow()
        mine = [je.job_id == job_id, je.state == EntryState.PUBLISHED.value]
        final = exists().where(
            payments.c.payment_id == je.payment_id, payments.c.status.in_(OK_PAYMENT)
        )
        parked_again = exists().where(
            entries.c.replay_of == je.entry_id, entries.c.namespace == self._ns
        )
        async with self._tx() as conn:
            await conn.execute(
                update(job_entries)
                .where(*mine, parked_again)
                .values(state=EntryState.FAILED.value, settled_at=now)
            )
            await conn.execute(
                update(job_entries)
                .where(*mine, final)
                .values(state=EntryState.SUCCEEDED.value, settled_at=now)
            )

    async def entry_statuses(self, entry_ids: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        unique = list(dict.fromkeys(entry_ids))
        async with self._tx() as conn:
            for start in range(0, len(unique), IN_CHUNK):
                rows = await conn.execute(
                    select(entries.c.id, entries.c.status).where(
                        entries.c.id.in_(unique[start : start + IN_CHUNK]),
                        not_indexed(entries.c.namespace) == self._ns,
                    )
                )
                found.update({str(r[0]): str(r[1]) for r in rows})
        return found

    def _purgeable(self, before: datetime) -> list[Any]:
        c = entries.c
        return [c.namespace == self._ns, c.status.in_(PURGEABLE), c.updated_at < before]

    async def purgeable(self, before: datetime) -> int:
        async with self._tx() as conn:
            value = (
                await conn.execute(select(func.count()).where(*self._purgeable(before)))
            ).scalar()
        return int(value or 0)

    async def purge(self, before: datetime, batch: int) -> int:
        c = entries.c
        async with self._tx() as conn:
            ids = [
                str(r[0])
                for r in await conn.execute(
                    select(c.id).where(*self._purgeable(before)).limit(batch)
                )
            ]
            if not ids:
                return 0
            result = await conn.execute(
                delete(entries).where(c.id.in_(ids), *self._purgeable(before))
            )
        return int(result.rowcount or 0)
