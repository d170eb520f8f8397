"""Ingest and reads of ``dlq_entries``.

* Ingest is ``INSERT ... ON CONFLICT (dedup_key) DO NOTHING``: a redelivered DLQ message
  inserts nothing.
* Pages are keyset queries ``ORDER BY dead_lettered_at DESC, id DESC`` with the redundant
  range condition ``dead_lettered_at <= :at`` so the index scan starts at the cursor instead
  of counting past every earlier row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select

from dlq_admin.ports import EntryFilters, NewEntry
from dlq_admin.rows import Entry, EntryGroup, FullEntry, StatusCount
from dlq_admin.store._base import (
    SUMMARY_COLUMNS,
    SqlBase,
    entries,
    not_indexed,
    to_entry,
    to_full_entry,
)
from schemas.dlq import EntryStatus
from schemas.outcome import ParkReason
from schemas.tables import utcnow

_CHAIN_LIMIT = 50


class SqlEntries(SqlBase):
    """``EntryWriter`` and ``EntryReader`` over SQLAlchemy."""

    async def insert_entry(self, entry: NewEntry) -> bool:
        now = utcnow()
        statement = (
            self._insert(entries)
            .values(
                id=entry.id,
                namespace=self._ns,
                dedup_key=entry.dedup_key,
                status=EntryStatus.PARKED.value,
                reason=entry.reason.value,
                fingerprint=entry.fingerprint,
                error_code=entry.error_code,
                error_message=entry.error_message,
                http_status=entry.http_status,
                exception_type=entry.exception_type,
                attempts=entry.attempts,
                payment_id=entry.payment_id,
                merchant_id=entry.merchant_id,
                dead_lettered_at=entry.dead_lettered_at,
                ingested_at=now,
                body=entry.body,
                body_bytes=entry.body_bytes,
                headers=entry.headers_json,
                content_type=entry.content_type,
                message_id=entry.message_id,
                correlation_id=entry.correlation_id,
                reply_to=entry.reply_to,
                origin=entry.origin,
                replay_of=entry.replay_of,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=[entries.c.namespace, entries.c.dedup_key])
        )
        async with self._tx() as conn:
            result = await conn.execute(statement)
        return bool(result.rowcount == 1)

    async def get_entry(self, entry_id: str) -> FullEntry | None:
        async with self._tx() as conn:
            row = (
                await conn.execute(
                    select(entries).where(entries.c.namespace == self._ns, entries.c.id == entry_id)
                )
            ).first()
        return to_full_entry(row._mapping) if row is not None else None

    async def get_entries(self, entry_ids: Sequence[str]) -> dict[str, Entry]:
        found: dict[str, Entry] = {}
        unique = list(dict.fromkeys(entry_ids))
        async with self._tx() as conn:
            for start in range(0, len(unique), 500):
                chunk = unique[start : start + 500]
                rows = await conn.execute(
                    select(*SUMMARY_COLUMNS).where(
                        entries.c.id.in_(chunk), not_indexed(entries.c.namespace) == self._ns
                    )
                )
                for row in rows:
                    found[row.id] = to_entry(row._mapping)
        return found

    def _where(self, filters: EntryFilters) -> list[Any]:
        c = entries.c
        conditions: list[Any] = [c.namespace == self._ns]
        if filters.reason is not None:
            conditions.append(c.reason == filters.reason.value)
        if filters.status is not None:
            conditions.append(c.status == filters.status.value)
        if filters.payment_id is not None:
            conditions.append(c.payment_id == filters.payment_id)
        if filters.merchant_id is not None:
            conditions.append(c.merchant_id == filters.merchant_id)
        if filters.fingerprint is not None:
            conditions.append(c.fingerprint == filters.fingerprint)
        if filters.since is not None:
            conditions.append(c.dead_lettered_at >= filters.since)
        if filters.until is not None:
            conditions.append(c.dead_lettered_at < filters.until)
        return conditions

    async def list_entries(
        self,
        filters: EntryFilters,
        limit: int,
        before: tuple[datetime, str] | None,
        *,
        oldest_first: bool = False,
    ) -> list[Entry]:
        c = entries.c
        conditions = self._where(filters)
        if before is not None:
            at, entry_id = before
            if oldest_first:
                conditions += [
                    c.dead_lettered_at >= at,
                    or_(c.dead_lettered_at > at, c.id > entry_id),
                ]
            else:
                conditions += [
                    c.dead_lettered_at <= at,
                    or_(c.dead_lettered_at < at, c.id < entry_id),
                ]
        order = (
            [c.dead_lettered_at.asc(), c.id.asc()]
            if oldest_first
            else [c.dead_lettered_at.desc(), c.id.desc()]
        )
        statement = select(*SUMMARY_COLUMNS).where(*conditions).order_by(*order).limit(limit)
        async with self._tx() as conn:
            rows = await conn.execute(statement)
            return [to_entry(row._mapping) for row in rows]

    async def chain(self, entry_id: str) -> list[Entry]:
        c = entries.c
        seen: dict[str, Entry] = {}
        async with self._tx() as conn:
            # Walk back to the first round, then forward through every later one.
            current: str | None = entry_id
            root = entry_id
            while current is not None and current not in seen and len(seen) < _CHAIN_LIMIT:
                row = (
                    await conn.execute(
                        select(*SUMMARY_COLUMNS).where(c.namespace == self._ns, c.id == current)
                    )
                ).first()
                if row is None:
                    break
                seen[row.id] = to_entry(row._mapping)
                root = row.id
                current = row.replay_of
            frontier = [root]
            while frontier and len(seen) < _CHAIN_LIMIT:
                # By ``replay_of`` alone, namespace checked here: with the namespace in the
                # WHERE clause SQLite walks a namespace index (every entry) instead of
                # ``ix_dlq_replay_of``.
                rows = await conn.execute(
                    select(*SUMMARY_COLUMNS, c.namespace.label("entry_namespace"))
                    .where(c.replay_of.in_(frontier))
                    .limit(_CHAIN_LIMIT)
                )
                frontier = []
                for row in rows:
                    if row.entry_namespace == self._ns and row.id not in seen:
                        seen[row.id] = to_entry(row._mapping)
                        frontier.append(row.id)
        return sorted(seen.values(), key=lambda e: (e.dead_lettered_at, e.id))

    async def counts(self) -> list[StatusCount]:
        c = entries.c
        async with self._tx() as conn:
            rows = await conn.execute(
                select(c.reason, c.status, func.count())
                .where(c.namespace == self._ns)
                .group_by(c.reason, c.status)
            )
            return [StatusCount(str(r[0]), str(r[1]), int(r[2])) for r in rows]

    async def oldest_parked(self) -> datetime | None:
        c = entries.c
        async with self._tx() as conn:
            value = (
                await conn.execute(
                    select(func.min(c.dead_lettered_at)).where(
                        c.namespace == self._ns, c.status == EntryStatus.PARKED.value
                    )
                )
            ).scalar()
        return self._aggregate_time(value)

    async def groups(
        self, status: EntryStatus, reason: ParkReason | None, limit: int
    ) -> list[EntryGroup]:
        """Two steps, so no step reads the rows' text: counts and first/last seen per
        fingerprint come from the covering index ``ix_dlq_status_fingerprint_time`` alone
        (about a tenth of the time of aggregating every column of 100,000 rows), then each
        group's newest entry (one indexed lookup per group) gives its sample and the
        columns the fingerprint is made of."""
        c = entries.c
        conditions = [c.namespace == self._ns, c.status == status.value]
        if reason is not None:
            conditions.append(c.reason == reason.value)
        count = func.count().label("count")
        statement = (
            select(
                c.fingerprint,
                count,
                func.min(c.dead_lettered_at).label("first_seen"),
                func.max(c.dead_lettered_at).label("last_seen"),
            )
            .where(*conditions)
            .group_by(c.fingerprint)
            .order_by(count.desc(), c.fingerprint)
            .limit(limit)
        )
        sample_columns = (
            c.id,
            c.reason,
            c.error_code,
            c.http_status,
            c.exception_type,
            c.error_message,
        )
        async with self._tx() as conn:
            rows = (await conn.execute(statement)).all()
            out: list[EntryGroup] = []
            for row in rows:
                # A Row is a tuple (``row.count`` is tuple.count): read by column name.
                m = row._mapping
                first_seen = self._aggregate_time(m["first_seen"])
                last_seen = self._aggregate_time(m["last_seen"])
                assert first_seen is not None
                assert last_seen is not None
                sample = (
                    await conn.execute(
                        select(*sample_columns)
                        .where(*conditions, c.fingerprint == m["fingerprint"])
                        .order_by(c.dead_lettered_at.desc(), c.id.desc())
                        .limit(1)
                    )
                ).first()
                if sample is None:  # the group's entries changed status meanwhile
                    continue
                out.append(
                    EntryGroup(
                        fingerprint=m["fingerprint"],
                        reason=ParkReason(sample.reason),
                        error_code=sample.error_code,
                        http_status=sample.http_status,
                        exception_type=sample.exception_type,
                        count=int(m["count"]),
                        first_seen=first_seen,
                        last_seen=last_seen,
                        sample_id=sample.id,
                        sample_error=sample.error_message,
                    )
                )
            return out
