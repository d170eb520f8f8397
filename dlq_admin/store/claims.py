"""State changes of ``dlq_entries``: replay claims and their settlement, discards.

* A replay claims its entry with ``UPDATE ... SET status='replaying' WHERE id=:id AND
  status='parked'``: of ten concurrent replays exactly one sees ``rowcount == 1``. A claim
  abandoned mid-publish (the process died) can be taken over once it is stale.
* A replay job claims a whole batch with ``claim_in_chunks`` (one ``UPDATE ... WHERE id IN
  (...) AND <claimable> RETURNING id, body, ...`` per chunk of ids: the rows it returns are
  the ones this call now owns, with what is needed to publish them, inside the job store's
  transaction) and ``finish_many_replays`` settles the batch with one transaction: confirmed
  entries ``replaying -> replayed``, failed ones back to ``parked``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime

from sqlalchemy import Update, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dlq_admin.rows import ClaimedEntry, Entry
from dlq_admin.store._base import (
    CLAIM_COLUMNS,
    IN_CHUNK,
    SUMMARY_COLUMNS,
    SqlBase,
    entries,
    not_indexed,
    to_claimed,
    to_entry,
)
from schemas.dlq import EntryStatus
from schemas.tables import utcnow


async def claim_in_chunks(
    conn: AsyncConnection, namespace: str, entry_ids: Sequence[str], stale_before: datetime
) -> AsyncIterator[list[ClaimedEntry]]:
    """Claim ``entry_ids`` (distinct) for replay inside the caller's transaction, one
    ``UPDATE ... RETURNING`` per ``IN_CHUNK`` ids; yields each chunk's claimed entries (the
    ones this transaction now owns: parked, or replaying with a claim older than
    ``stale_before``)."""
    c = entries.c
    status = not_indexed(c.status)
    claimable = or_(
        status == EntryStatus.PARKED.value,
        and_(status == EntryStatus.REPLAYING.value, c.updated_at < stale_before),
    )
    now = utcnow()
    for start in range(0, len(entry_ids), IN_CHUNK):
        rows = await conn.execute(
            update(entries)
            .where(
                c.id.in_(entry_ids[start : start + IN_CHUNK]),
                not_indexed(c.namespace) == namespace,
                claimable,
            )
            .values(status=EntryStatus.REPLAYING.value, updated_at=now)
            .returning(*CLAIM_COLUMNS)
        )
        yield [to_claimed(row._mapping) for row in rows]


class SqlClaims(SqlBase):
    """``ReplayClaims`` and ``DiscardWriter`` over SQLAlchemy."""

    async def claim_for_replay(self, entry_id: str, stale_before: datetime) -> bool:
        c = entries.c
        claimable = or_(
            c.status == EntryStatus.PARKED.value,
            and_(c.status == EntryStatus.REPLAYING.value, c.updated_at < stale_before),
        )
        async with self._tx() as conn:
            result = await conn.execute(
                update(entries)
                .where(c.namespace == self._ns, c.id == entry_id, claimable)
                .values(status=EntryStatus.REPLAYING.value, updated_at=utcnow())
            )
        return bool(result.rowcount == 1)

    async def finish_many_replays(
        self, replayed: Sequence[str], failed: Sequence[str], actor: str
    ) -> datetime:
        c = entries.c
        now = utcnow()
        mine = [
            not_indexed(c.namespace) == self._ns,
            not_indexed(c.status) == EntryStatus.REPLAYING.value,
        ]
        async with self._tx() as conn:
            for start in range(0, len(replayed), IN_CHUNK):
                await conn.execute(
                    update(entries)
                    .where(c.id.in_(replayed[start : start + IN_CHUNK]), *mine)
                    .values(
                        status=EntryStatus.REPLAYED.value,
                        replayed_at=now,
                        replayed_by=actor,
                        replayed_body=None,
                        updated_at=now,
                    )
                )
            for start in range(0, len(failed), IN_CHUNK):
                await conn.execute(
                    update(entries)
                    .where(c.id.in_(failed[start : start + IN_CHUNK]), *mine)
                    .values(status=EntryStatus.PARKED.value, updated_at=now)
                )
        return now

    def _replaying(self, entry_id: str) -> Update:
        """An UPDATE of ``entry_id`` that only touches it while it is ``replaying``."""
        c = entries.c
        return update(entries).where(
            c.namespace == self._ns, c.id == entry_id, c.status == EntryStatus.REPLAYING.value
        )

    async def finish_replay(self, entry_id: str, actor: str, replayed_body: str | None) -> Entry:
        c = entries.c
        now = utcnow()
        async with self._tx() as conn:
            await conn.execute(
                self._replaying(entry_id).values(
                    status=EntryStatus.REPLAYED.value,
                    replayed_at=now,
                    replayed_by=actor,
                    replayed_body=replayed_body,
                    updated_at=now,
                )
            )
            row = (
                await conn.execute(
                    select(*SUMMARY_COLUMNS).where(c.namespace == self._ns, c.id == entry_id)
                )
            ).one()
        return to_entry(row._mapping)

    async def abort_replay(self, entry_id: str) -> None:
        async with self._tx() as conn:
            await conn.execute(
                self._replaying(entry_id).values(
                    status=EntryStatus.PARKED.value, updated_at=utcnow()
                )
            )

    async def discard(self, entry_id: str, actor: str) -> bool:
        c = entries.c
        now = utcnow()
        async with self._tx() as conn:
            result = await conn.execute(
                update(entries)
                .where(
                    c.namespace == self._ns, c.id == entry_id, c.status == EntryStatus.PARKED.value
                )
                .values(
                    status=EntryStatus.DISCARDED.value,
                    discarded_at=now,
                    discarded_by=actor,
                    updated_at=now,
                )
            )
        return bool(result.rowcount == 1)
