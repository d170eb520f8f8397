"""What every part of ``SqlDlqStore`` shares: the tables, the transaction helper, the
conversion of database rows into the typed rows of ``dlq_admin.rows``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dlq_admin.errors import Unavailable
from dlq_admin.rows import ClaimedEntry, Entry, FullEntry
from processor.db import transaction
from schemas.dlq import EntryStatus
from schemas.dlq_tables import AuditLogRow, DlqEntryRow
from schemas.outcome import ParkReason
from schemas.tables import PaymentAttemptRow, PaymentRow

entries = DlqEntryRow.__table__  # type: ignore[attr-defined]
audit_log = AuditLogRow.__table__  # type: ignore[attr-defined]
payments = PaymentRow.__table__  # type: ignore[attr-defined]
attempts = PaymentAttemptRow.__table__  # type: ignore[attr-defined]

SUMMARY_COLUMNS = [
    c
    for c in entries.c
    if c.name not in ("body", "headers", "replayed_body", "dedup_key", "namespace")
]
"""The columns of an ``Entry`` (everything but the body, headers and keys)."""
CLAIM_COLUMNS = [
    entries.c.id,
    entries.c.payment_id,
    entries.c.message_id,
    entries.c.body,
    entries.c.headers,
]
"""What a bulk claim returns: everything needed to publish the entry."""
IN_CHUNK = 500
"""Ids per ``IN (...)`` list (SQLite allows 32,766 bound parameters, asyncpg 32,767)."""

_DT = entries.c.dead_lettered_at.type
_ENTRY_FIELDS = tuple(Entry.__dataclass_fields__)
_CLAIM_FIELDS = tuple(ClaimedEntry.__dataclass_fields__)


def not_indexed(column: Any) -> Any:
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


def _entry_values(m: RowMapping) -> dict[str, Any]:
    values = {name: m[name] for name in _ENTRY_FIELDS}
    values["status"] = EntryStatus(values["status"])
    values["reason"] = ParkReason(values["reason"])
    return values


def to_entry(m: RowMapping) -> Entry:
    """An ``Entry`` from a row holding at least ``SUMMARY_COLUMNS``."""
    return Entry(**_entry_values(m))


def to_full_entry(m: RowMapping) -> FullEntry:
    """A ``FullEntry`` from a row of every column."""
    return FullEntry(
        **_entry_values(m), body=m["body"], headers=m["headers"], replayed_body=m["replayed_body"]
    )


def to_claimed(m: RowMapping) -> ClaimedEntry:
    """A ``ClaimedEntry`` from a row of ``CLAIM_COLUMNS``."""
    return ClaimedEntry(**{name: m[name] for name in _CLAIM_FIELDS})


class SqlBase:
    """The engine, the namespace and a transaction that maps connection failures to
    ``Unavailable``; every part of ``SqlDlqStore`` builds on it."""

    def __init__(self, engine: AsyncEngine, namespace: str) -> None:
        self._engine = engine
        self._ns = namespace
        self._insert: Any = (
            postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        )

    def _tx(self) -> AbstractAsyncContextManager[AsyncConnection]:
        return transaction(self._engine, _unavailable)

    @asynccontextmanager
    async def _keyed_tx(self) -> AsyncIterator[AsyncConnection]:
        """A transaction whose statements all reach their rows through an index.

        Without planner statistics (PostgreSQL until ANALYZE runs after a bulk load) a
        ``replay_of IN (500 ids)`` is guessed to match much of ``dlq_entries`` and planned
        as a sequential scan of the whole table, 100,000 rows read to find none. PostgreSQL
        is told not to scan sequentially inside this transaction; SQLite already uses the
        index for such lookups."""
        async with self._tx() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(text("SET LOCAL enable_seqscan = off"))
            yield conn

    def _aggregate_time(self, value: Any) -> datetime | None:
        """A ``min()``/``max()`` of a time column: SQLite loses the column type there, so the
        stored UTC text is parsed again."""
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        result: datetime | None = _DT.process_result_value(value, self._engine.dialect)
        return result
