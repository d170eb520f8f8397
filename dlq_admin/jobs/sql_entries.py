"""The ``replay_job_entries`` side of ``SqlJobStore``: a job's frozen entries, claimed,
published and followed by position (the primary key), and the retention purge.

Claiming entries for a job updates ``dlq_entries`` (``parked -> replaying``, the claim every
replay makes) and the job's entries (``waiting -> claimed``) in one transaction, so after a
crash the job knows which ``replaying`` entries are its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dlq_admin.jobs.model import EntryState, JobEntry
from dlq_admin.jobs.sql_jobs import Counts, add_counts, job_entries, jobs
from dlq_admin.rows import ClaimedEntry
from dlq_admin.store._base import (
    IN_CHUNK,
    SqlBase,
    entries,
    not_indexed,
    payments,
)
from dlq_admin.store.claims import claim_in_chunks
from schemas.dlq import EntryStatus
from schemas.tables import utcnow

OK_PAYMENT = ("succeeded", "declined")
"""Payment statuses that end a replayed payment well: the gateway answered for good."""
PURGEABLE = (EntryStatus.DISCARDED.value, EntryStatus.REPLAYED.value)
"""Entry statuses retention may delete (never ``parked`` or ``replaying``)."""
FOLLOW_LIMIT = 5000
"""Followed entries looked at per ``follow`` (the oldest first): bounds its cost."""


def _at(job_id: str, positions: Sequence[int]) -> list[Any]:
    """Conditions naming the job's entries at ``positions`` (not empty), and the range of
    positions they lie in.

    The range selects nothing more, but it keeps the planner on the primary key: without
    statistics PostgreSQL guesses that ``job_id = :id`` alone matches a handful of rows and
    reads every index entry of the job (100,000, and their dead versions) to pick 500
    positions out; with the range it reads the key between the first and last position."""
    je = job_entries.c
    return [
        je.job_id == job_id,
        je.position.in_(list(positions)),
        je.position.between(min(positions), max(positions)),
    ]


async def _move(
    conn: AsyncConnection,
    job_id: str,
    positions: Sequence[int],
    current: EntryState,
    counts: Counts,
    **values: Any,
) -> None:
    """Set ``values`` (a new ``state``, maybe a ``note``) on the job's entries at
    ``positions`` that are still ``current``, one UPDATE per ``IN_CHUNK`` positions (an entry
    another step moved on is left alone), and note the move in ``counts``."""
    je = job_entries.c
    moved = 0
    for start in range(0, len(positions), IN_CHUNK):
        result = await conn.execute(
            update(job_entries)
            .where(*_at(job_id, positions[start : start + IN_CHUNK]), je.state == current.value)
            .values(**values)
        )
        moved += int(result.rowcount or 0)
    counts[(current.value, "")] -= moved
    counts[(values["state"], values.get("note") or "")] += moved


class SqlJobEntries(SqlBase):
    """The frozen entries of ``JobStore``, and the retention purge."""

    async def _moves(
        self,
        conn: AsyncConnection,
        job_id: str,
        current: EntryState,
        moves: Sequence[tuple[Sequence[int], dict[str, Any]]],
    ) -> None:
        """``_move`` each ``(positions, values)`` of ``moves`` from ``current``, then add the
        moves to the job's counts, in the caller's transaction."""
        counts: Counts = Counter()
        for positions, values in moves:
            await _move(conn, job_id, positions, current, counts, **values)
        await add_counts(conn, self._insert, job_id, counts)

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

    async def skip_entries(self, job_id: str, notes: Mapping[int, str]) -> None:
        now = utcnow()
        by_note: dict[str, list[int]] = {}
        for position, note in notes.items():
            by_note.setdefault(note, []).append(position)
        skipped = EntryState.SKIPPED.value
        async with self._tx() as conn:
            await self._moves(
                conn,
                job_id,
                EntryState.WAITING,
                [
                    (ids, {"state": skipped, "note": note[:64], "settled_at": now})
                    for note, ids in by_note.items()
                ],
            )

    async def claim_entries(
        self, job_id: str, entries_: Sequence[JobEntry], stale_before: datetime
    ) -> dict[str, ClaimedEntry]:
        position = {e.entry_id: e.position for e in entries_}
        claimed: dict[str, ClaimedEntry] = {}
        counts: Counts = Counter()
        async with self._tx() as conn:
            async for batch in claim_in_chunks(conn, self._ns, list(position), stale_before):
                claimed.update((e.id, e) for e in batch)
                await _move(
                    conn,
                    job_id,
                    [position[e.id] for e in batch],
                    EntryState.WAITING,
                    counts,
                    state=EntryState.CLAIMED.value,
                )
            await add_counts(conn, self._insert, job_id, counts)
        return claimed

    async def settle_entries(
        self, job_id: str, published: Sequence[int], unpublished: Sequence[int]
    ) -> None:
        now = utcnow()
        async with self._tx() as conn:
            await self._moves(
                conn,
                job_id,
                EntryState.CLAIMED,
                [
                    (published, {"state": EntryState.PUBLISHED.value, "published_at": now}),
                    (unpublished, {"state": EntryState.WAITING.value, "published_at": None}),
                ],
            )
            if published:
                await conn.execute(
                    update(jobs).where(jobs.c.id == job_id).values(last_published_at=now)
                )

    async def follow(self, job_id: str) -> None:
        # Read the followed entries, look their payments and re-parkings up by key (primary
        # key, ``ix_dlq_replay_of``), then settle them by position: a correlated ``EXISTS``
        # over ``dlq_entries`` is planned as a scan per row by SQLite.
        je = job_entries.c
        now = utcnow()
        async with self._keyed_tx() as conn:
            rows = (
                await conn.execute(
                    select(je.position, je.entry_id, je.payment_id)
                    .where(je.job_id == job_id, je.state == EntryState.PUBLISHED.value)
                    .order_by(je.position)
                    .limit(FOLLOW_LIMIT)
                )
            ).all()
            failed: list[int] = []
            succeeded: list[int] = []
            for start in range(0, len(rows), IN_CHUNK):
                chunk = rows[start : start + IN_CHUNK]
                again = {
                    str(r[0])
                    for r in await conn.execute(
                        select(entries.c.replay_of).where(
                            entries.c.replay_of.in_([r.entry_id for r in chunk]),
                            not_indexed(entries.c.namespace) == self._ns,
                        )
                    )
                }
                final = {
                    str(r[0])
                    for r in await conn.execute(
                        select(payments.c.payment_id).where(
                            payments.c.payment_id.in_(
                                [r.payment_id for r in chunk if r.payment_id]
                            ),
                            payments.c.status.in_(OK_PAYMENT),
                        )
                    )
                }
                for r in chunk:
                    if r.entry_id in again:
                        failed.append(r.position)
                    elif r.payment_id in final:
                        succeeded.append(r.position)
            await self._moves(
                conn,
                job_id,
                EntryState.PUBLISHED,
                [
                    (failed, {"state": EntryState.FAILED.value, "settled_at": now}),
                    (succeeded, {"state": EntryState.SUCCEEDED.value, "settled_at": now}),
                ],
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
