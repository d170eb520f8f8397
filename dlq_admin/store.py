"""``DlqStore`` over async SQLAlchemy (SQLite or PostgreSQL).

* Ingest is ``INSERT ... ON CONFLICT (dedup_key) DO NOTHING``: a redelivered DLQ message
  inserts nothing.
* Pages are keyset queries ``ORDER BY dead_lettered_at DESC, id DESC`` with the redundant
  range condition ``dead_lettered_at <= :at`` so the index scan starts at the cursor instead
  of counting past every earlier row.
* A replay claims its entry with ``UPDATE ... SET status='replaying' WHERE id=:id AND
  status='parked'``: of ten concurrent replays exactly one sees ``rowcount == 1``. A claim
  abandoned mid-publish (the process died) can be taken over once it is stale.
* A bulk replay claims a whole chunk with one ``UPDATE ... WHERE id IN (...) AND <claimable>
  RETURNING id, body, ...`` (the rows it returns are the ones this call now owns, with what
  is needed to publish them) and settles the chunk with one transaction: confirmed entries
  ``replaying -> replayed``, failed ones back to ``parked``.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dlq_admin.errors import Unavailable
from dlq_admin.ports import AuditRecord, EntryFilters, NewEntry, Row
from processor.db import transaction
from schemas.dlq import EntryStatus
from schemas.dlq_tables import AuditLogRow, DlqEntryRow
from schemas.outcome import ParkReason
from schemas.tables import PaymentAttemptRow, PaymentRow, utcnow

_entries = DlqEntryRow.__table__  # type: ignore[attr-defined]
_audit = AuditLogRow.__table__  # type: ignore[attr-defined]
_payments = PaymentRow.__table__  # type: ignore[attr-defined]
_attempts = PaymentAttemptRow.__table__  # type: ignore[attr-defined]

_SUMMARY_COLUMNS = [
    c
    for c in _entries.c
    if c.name not in ("body", "headers", "replayed_body", "dedup_key", "namespace")
]
_CLAIM_COLUMNS = [
    _entries.c.id,
    _entries.c.payment_id,
    _entries.c.message_id,
    _entries.c.body,
    _entries.c.headers,
]
"""What a bulk claim returns: everything needed to publish the entry."""
_CHAIN_LIMIT = 50
_IN_CHUNK = 500
"""Ids per ``IN (...)`` list (SQLite allows 32,766 bound parameters, asyncpg 32,767)."""


def _not_indexed(column: Any) -> Any:
    """``column`` as an expression no index can serve (``column || ''``).

    Statements that name their rows by id also filter on ``namespace`` and ``status``. On a
    table without planner statistics (SQLite is never ANALYZEd here; PostgreSQL not until
    autovacuum gets to it after a bulk load) both planners guess that an equality on those
    low-cardinality columns matches a handful of rows, and scan the whole namespace through
    one of their indexes instead of looking 500 ids up by primary key: 100,000 rows read to
    claim 500. Hiding the columns from the planner leaves the primary key as the only way in.
    """
    return column.concat("")


def _unavailable(reason: str) -> Unavailable:
    # The detail may name hosts; the API answer only says what kind of failure it was.
    return Unavailable(f"database unavailable: {reason.split(':', 1)[0]}")


class SqlDlqStore:
    def __init__(self, engine: AsyncEngine, namespace: str) -> None:
        self._engine = engine
        self._ns = namespace
        self._insert: Any = (
            postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        )

    def _tx(self) -> AbstractAsyncContextManager[AsyncConnection]:
        return transaction(self._engine, _unavailable)

    # ---- ingest ------------------------------------------------------------------------

    async def insert_entry(self, entry: NewEntry) -> bool:
        now = utcnow()
        statement = (
            self._insert(_entries)
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
            .on_conflict_do_nothing(index_elements=[_entries.c.namespace, _entries.c.dedup_key])
        )
        async with self._tx() as conn:
            result = await conn.execute(statement)
        return bool(result.rowcount == 1)

    # ---- reads -------------------------------------------------------------------------

    async def get_entry(self, entry_id: str) -> Row | None:
        async with self._tx() as conn:
            row = (
                await conn.execute(
                    select(_entries).where(
                        _entries.c.namespace == self._ns, _entries.c.id == entry_id
                    )
                )
            ).first()
        return row._mapping if row is not None else None

    async def get_entries(self, entry_ids: Sequence[str]) -> dict[str, Row]:
        found: dict[str, Row] = {}
        unique = list(dict.fromkeys(entry_ids))
        async with self._tx() as conn:
            for start in range(0, len(unique), 500):
                chunk = unique[start : start + 500]
                rows = await conn.execute(
                    select(*_SUMMARY_COLUMNS).where(
                        _entries.c.id.in_(chunk), _not_indexed(_entries.c.namespace) == self._ns
                    )
                )
                for row in rows:
                    found[row.id] = row._mapping
        return found

    def _where(self, filters: EntryFilters) -> list[Any]:
        c = _entries.c
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
    ) -> list[Row]:
        c = _entries.c
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
        statement = select(*_SUMMARY_COLUMNS).where(*conditions).order_by(*order).limit(limit)
        async with self._tx() as conn:
            rows = await conn.execute(statement)
            return [row._mapping for row in rows]

    async def chain(self, entry_id: str) -> list[Row]:
        c = _entries.c
        seen: dict[str, Row] = {}
        async with self._tx() as conn:
            # Walk back to the first round, then forward through every later one.
            current: str | None = entry_id
            root = entry_id
            while current is not None and current not in seen and len(seen) < _CHAIN_LIMIT:
                row = (
                    await conn.execute(
                        select(*_SUMMARY_COLUMNS).where(c.namespace == self._ns, c.id == current)
                    )
                ).first()
                if row is None:
                    break
                seen[row.id] = row._mapping
                root = row.id
                current = row.replay_of
            frontier = [root]
            while frontier and len(seen) < _CHAIN_LIMIT:
                rows = await conn.execute(
                    select(*_SUMMARY_COLUMNS)
                    .where(c.namespace == self._ns, c.replay_of.in_(frontier))
                    .limit(_CHAIN_LIMIT)
                )
                frontier = []
                for row in rows:
                    if row.id not in seen:
                        seen[row.id] = row._mapping
                        frontier.append(row.id)
        return sorted(seen.values(), key=lambda r: (r["dead_lettered_at"], r["id"]))

    async def counts(self) -> list[tuple[str, str, int]]:
        c = _entries.c
        async with self._tx() as conn:
            rows = await conn.execute(
                select(c.reason, c.status, func.count())
                .where(c.namespace == self._ns)
                .group_by(c.reason, c.status)
            )
            return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]

    async def oldest_parked(self) -> datetime | None:
        c = _entries.c
        async with self._tx() as conn:
            value = (
                await conn.execute(
                    select(func.min(c.dead_lettered_at)).where(
                        c.namespace == self._ns, c.status == EntryStatus.PARKED.value
                    )
                )
            ).scalar()
        if value is None:
            return None
        # min() loses the column type on SQLite: reparse the stored UTC text.
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        result: datetime | None = _DT.process_result_value(value, self._engine.dialect)
        return result

    async def groups(self, status: EntryStatus, reason: ParkReason | None, limit: int) -> list[Row]:
        c = _entries.c
        conditions = [c.namespace == self._ns, c.status == status.value]
        if reason is not None:
            conditions.append(c.reason == reason.value)
        count = func.count().label("count")
        statement = (
            select(
                c.fingerprint,
                func.min(c.reason).label("reason"),
                func.min(c.error_code).label("error_code"),
                func.min(c.http_status).label("http_status"),
                func.min(c.exception_type).label("exception_type"),
                count,
                func.min(c.dead_lettered_at).label("first_seen"),
                func.max(c.dead_lettered_at).label("last_seen"),
                func.max(c.id).label("sample_id"),
                func.max(c.error_message).label("sample_error"),
            )
            .where(*conditions)
            .group_by(c.fingerprint)
            .order_by(count.desc(), c.fingerprint)
            .limit(limit)
        )
        async with self._tx() as conn:
            rows = await conn.execute(statement)
            out: list[Row] = []
            for row in rows:
                values = dict(row._mapping)
                for key in ("first_seen", "last_seen"):
                    value = values[key]
                    if isinstance(value, str):
                        value = datetime.fromisoformat(value)
                    values[key] = _DT.process_result_value(value, self._engine.dialect)
                out.append(values)
            return out

    # ---- state changes -----------------------------------------------------------------

    async def claim_for_replay(self, entry_id: str, stale_before: datetime) -> bool:
        c = _entries.c
        claimable = or_(
            c.status == EntryStatus.PARKED.value,
            and_(c.status == EntryStatus.REPLAYING.value, c.updated_at < stale_before),
        )
        async with self._tx() as conn:
            result = await conn.execute(
                update(_entries)
                .where(c.namespace == self._ns, c.id == entry_id, claimable)
                .values(status=EntryStatus.REPLAYING.value, updated_at=utcnow())
            )
        return bool(result.rowcount == 1)

    async def claim_many_for_replay(
        self, entry_ids: Sequence[str], stale_before: datetime
    ) -> dict[str, Row]:
        c = _entries.c
        status = _not_indexed(c.status)
        claimable = or_(
            status == EntryStatus.PARKED.value,
            and_(status == EntryStatus.REPLAYING.value, c.updated_at < stale_before),
        )
        unique = list(dict.fromkeys(entry_ids))
        claimed: dict[str, Row] = {}
        if not unique:
            return claimed
        now = utcnow()
        async with self._tx() as conn:
            for start in range(0, len(unique), _IN_CHUNK):
                rows = await conn.execute(
                    update(_entries)
                    .where(
                        c.id.in_(unique[start : start + _IN_CHUNK]),
                        _not_indexed(c.namespace) == self._ns,
                        claimable,
                    )
                    .values(status=EntryStatus.REPLAYING.value, updated_at=now)
                    .returning(*_CLAIM_COLUMNS)
                )
                for row in rows:
                    claimed[row.id] = row._mapping
        return claimed

    async def finish_many_replays(
        self, replayed: Sequence[str], failed: Sequence[str], actor: str
    ) -> datetime:
        c = _entries.c
        now = utcnow()
        mine = [
            _not_indexed(c.namespace) == self._ns,
            _not_indexed(c.status) == EntryStatus.REPLAYING.value,
        ]
        async with self._tx() as conn:
            for start in range(0, len(replayed), _IN_CHUNK):
                await conn.execute(
                    update(_entries)
                    .where(c.id.in_(replayed[start : start + _IN_CHUNK]), *mine)
                    .values(
                        status=EntryStatus.REPLAYED.value,
                        replayed_at=now,
                        replayed_by=actor,
                        replayed_body=None,
                        updated_at=now,
                    )
                )
            for start in range(0, len(failed), _IN_CHUNK):
                await conn.execute(
                    update(_entries)
                    .where(c.id.in_(failed[start : start + _IN_CHUNK]), *mine)
                    .values(status=EntryStatus.PARKED.value, updated_at=now)
                )
        return now

    async def finish_replay(self, entry_id: str, actor: str, replayed_body: str | None) -> Row:
        c = _entries.c
        now = utcnow()
        async with self._tx() as conn:
            await conn.execute(
                update(_entries)
                .where(
                    c.namespace == self._ns,
                    c.id == entry_id,
                    c.status == EntryStatus.REPLAYING.value,
                )
                .values(
                    status=EntryStatus.REPLAYED.value,
                    replayed_at=now,
                    replayed_by=actor,
                    replayed_body=replayed_body,
                    updated_at=now,
                )
            )
            row = (
                await conn.execute(
                    select(*_SUMMARY_COLUMNS).where(c.namespace == self._ns, c.id == entry_id)
                )
            ).one()
        return row._mapping

    async def abort_replay(self, entry_id: str) -> None:
        c = _entries.c
        async with self._tx() as conn:
            await conn.execute(
                update(_entries)
                .where(
                    c.namespace == self._ns,
                    c.id == entry_id,
                    c.status == EntryStatus.REPLAYING.value,
                )
                .values(status=EntryStatus.PARKED.value, updated_at=utcnow())
            )

    async def discard(self, entry_id: str, actor: str) -> bool:
        c = _entries.c
        now = utcnow()
        async with self._tx() as conn:
            result = await conn.execute(
                update(_entries)
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

    # ---- the worker's tables -----------------------------------------------------------

    async def payment(self, payment_id: str) -> Row | None:
        async with self._tx() as conn:
            row = (
                await conn.execute(select(_payments).where(_payments.c.payment_id == payment_id))
            ).first()
        return row._mapping if row is not None else None

    async def payment_statuses(self, payment_ids: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        unique = list(dict.fromkeys(payment_ids))
        async with self._tx() as conn:
            for start in range(0, len(unique), 500):
                rows = await conn.execute(
                    select(_payments.c.payment_id, _payments.c.status).where(
                        _payments.c.payment_id.in_(unique[start : start + 500])
                    )
                )
                found.update({str(r[0]): str(r[1]) for r in rows})
        return found

    async def attempts(self, payment_id: str) -> list[Row]:
        a = _attempts.c
        async with self._tx() as conn:
            rows = await conn.execute(
                select(_attempts)
                .where(a.payment_id == payment_id)
                .order_by(a.started_at, a.id)
                .limit(500)
            )
            return [row._mapping for row in rows]

    # ---- audit -------------------------------------------------------------------------

    async def add_audit(self, record: AuditRecord) -> None:
        async with self._tx() as conn:
            await conn.execute(
                _audit.insert().values(
                    namespace=self._ns,
                    at=utcnow(),
                    actor=record.actor,
                    role=record.role,
                    action=record.action[:64],
                    target=record.target[:500] if record.target else None,
                    outcome=record.outcome[:32],
                    status_code=record.status_code,
                    detail=record.detail,
                    client=record.client[:100] if record.client else None,
                )
            )

    async def list_audit(
        self,
        limit: int,
        before_id: int | None,
        actor: str | None,
        action: str | None,
        outcome: str | None,
    ) -> list[Row]:
        a = _audit.c
        conditions: list[Any] = [a.namespace == self._ns]
        if before_id is not None:
            conditions.append(a.id < before_id)
        if actor is not None:
            conditions.append(a.actor == actor)
        if action is not None:
            conditions.append(a.action == action)
        if outcome is not None:
            conditions.append(a.outcome == outcome)
        async with self._tx() as conn:
            rows = await conn.execute(
                select(_audit).where(*conditions).order_by(a.id.desc()).limit(limit)
            )
            return [row._mapping for row in rows]


_DT = _entries.c.dead_lettered_at.type
