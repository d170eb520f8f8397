"""PostgreSQL's hot path: a batch of claims or of outcomes in ONE statement over asyncpg.

Why: profiling a worker that drains a backlog showed SQLAlchemy's per-row work (parameter
processing, executemany bookkeeping, result rows) and its per-transaction round trips (pool
pre-ping, BEGIN, COMMIT) as the largest single share of the worker's CPU. Here a whole batch
travels as a handful of typed arrays that ``unnest`` turns back into rows inside the server:
one round trip per batch, a few list appends per payment. The statements do exactly what
``PortableBatches`` does, and the store's tests run against both.

Each statement is atomic on its own (autocommit), so no BEGIN/COMMIT is needed: the claim
upsert wins a row or leaves it alone; the outcome statement inserts the attempts, updates the
rows that are not final yet and returns every row's state.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from processor.adapters.store_batches import ClaimBatch, in_order
from processor.adapters.store_rows import (
    ATTEMPT_COLUMNS,
    CLAIM_COLUMNS,
    FINAL_SQL,
    OUTCOME_COLUMNS,
    SNAPSHOT_COLUMNS,
    attempt_values,
    claim_conflict_sql,
    outcome_assignments,
    outcome_values,
)
from processor.ports import AttemptOutcome, PaymentSnapshot, StoreUnavailable

_COLUMNS = ", ".join(SNAPSHOT_COLUMNS)


def _arrays(columns: Sequence[tuple[str, str]], first: int) -> tuple[str, str]:
    """``unnest`` of one typed array parameter per column, numbered from ``$first``, and
    the column list that names what it yields."""
    arrays = ", ".join(f"${first + i}::{sql_type}[]" for i, (_, sql_type) in enumerate(columns))
    return f"unnest({arrays})", ", ".join(name for name, _ in columns)


def _claim_sql(reopen: bool) -> str:
    # ORDER BY: rows are inserted (and locked) in key order, so concurrent batches lock in
    # one global order and cannot deadlock each other.
    unnest, names = _arrays(CLAIM_COLUMNS, 1)
    now = f"${len(CLAIM_COLUMNS) + 1}"
    return f"""
INSERT INTO payments AS t ({names}, status, attempts, created_at, updated_at)
SELECT {", ".join("v." + name for name, _ in CLAIM_COLUMNS)}, 'processing', 1, {now}, {now}
FROM {unnest} AS v({names})
ORDER BY v.payment_id
{claim_conflict_sql(reopen)}
"""  # noqa: S608 - constants only; every value is a bound parameter


CLAIM_SQL = {False: _claim_sql(False), True: _claim_sql(True)}

ROWS_SQL = f"SELECT {_COLUMNS} FROM payments WHERE payment_id = ANY($1::text[])"  # noqa: S608


def _record_sql() -> str:
    """The outcomes ($1 the payment_ids, then one array per outcome column), the attempt
    rows (one array per attempt column), then the time of the update.

    The UPDATE's RETURNING gives the new state of the rows it changed; the last SELECT reads
    the statement's snapshot, i.e. the unchanged state of the rows it skipped (already final).
    """
    outcome = [("payment_id", "text")] + [(c.name, c.sql_type) for c in OUTCOME_COLUMNS]
    attempt = [(c.name, c.sql_type) for c in ATTEMPT_COLUMNS]
    outcomes, outcome_names = _arrays(outcome, 1)
    attempts, attempt_names = _arrays(attempt, len(outcome) + 1)
    now = f"${len(outcome) + len(attempt) + 1}"
    assignments = outcome_assignments(lambda column: "v." + column.name, stored="t.")
    return f"""
WITH v AS (
    SELECT * FROM {outcomes} AS v({outcome_names})
), attempts AS (
    INSERT INTO payment_attempts ({attempt_names}) SELECT * FROM {attempts}
), updated AS (
    UPDATE payments AS t SET {assignments}, updated_at = {now}
    FROM v
    WHERE t.payment_id = v.payment_id AND t.status NOT IN {FINAL_SQL}
    RETURNING {", ".join("t." + column for column in SNAPSHOT_COLUMNS)}
)
SELECT * FROM updated
UNION ALL
SELECT {_COLUMNS} FROM payments
WHERE payment_id = ANY($1::text[]) AND payment_id NOT IN (SELECT payment_id FROM updated)
"""  # noqa: S608 - constants only; every value is a bound parameter


RECORD_SQL = _record_sql()

# Every statement here reaches rows by primary key. On a table that was empty a minute ago
# (a new deployment, a bench run) the planner's statistics lag behind and it picks a
# sequential scan joined by hash, milliseconds per batch instead of a hundred index probes;
# these connections run nothing else, so sequential scans are simply ruled out for them.
_SESSION = {"enable_seqscan": "off", "jit": "off", "application_name": "payproc-worker"}

# Deadlock, serialization failure, lock timeout, query cancelled, server shutting down:
# the statement did nothing and may simply run again later.
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001", "55P03", "57014", "57P01", "57P02", "57P03"})


def _unavailable(exc: BaseException) -> bool:
    sqlstate = getattr(exc, "sqlstate", None)
    return (
        isinstance(
            exc,
            OSError | TimeoutError | asyncpg.InterfaceError | asyncpg.PostgresConnectionError,
        )
        or sqlstate in _RETRYABLE_SQLSTATES
        or (isinstance(sqlstate, str) and sqlstate.startswith("08"))
    )


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    out: list[list[Any]] = [[] for _ in range(width)]
    for row in rows:
        for index, value in enumerate(row):
            out[index].append(value)
    return out


class PgBatches:
    """``BatchWriter`` for PostgreSQL: a batch of claims or of outcomes is one statement on
    a connection of our own.

    A few connections are kept open (one per batch running at once); a connection that
    failed is closed and a new one opened by the next batch.
    """

    def __init__(self, engine: AsyncEngine, connect_timeout: float = 10.0) -> None:
        url = engine.url.set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self._connect_timeout = connect_timeout
        self._idle: list[asyncpg.Connection] = []
        self._closed = False
        # Whoever disposes of the engine closes these connections too.
        event.listen(engine.sync_engine, "engine_disposed", self._terminate_idle)

    def _terminate_idle(self, _engine: object) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.terminate()

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 5)

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        connection: asyncpg.Connection | None = None
        try:
            connection = (
                self._idle.pop()
                if self._idle
                else await asyncpg.connect(
                    self._dsn, timeout=self._connect_timeout, server_settings=_SESSION
                )
            )
            yield connection
        except BaseException as exc:
            # Failed or cancelled mid-statement: the protocol state is unknown, never reuse it.
            if connection is not None:
                connection.terminate()
                connection = None
            if isinstance(exc, Exception) and _unavailable(exc):
                raise StoreUnavailable(f"{type(exc).__name__}: {str(exc)[:200]}") from exc
            raise
        finally:
            if connection is not None:
                if self._closed:
                    connection.terminate()
                else:
                    self._idle.append(connection)

    async def claim_many(self, batch: ClaimBatch) -> None:
        async with self._connection() as connection:
            for group in batch.groups:
                arrays = _columns(group.rows, len(CLAIM_COLUMNS))
                for row in await connection.fetch(CLAIM_SQL[group.reopen], *arrays, batch.now):
                    group.won(row["payment_id"], row["attempts"])
            losers = batch.losers()
            if losers:
                found = await connection.fetch(ROWS_SQL, losers)
                batch.found({row["payment_id"]: row for row in found})

    async def record_many(
        self, outcomes: Sequence[AttemptOutcome], now: datetime
    ) -> list[PaymentSnapshot]:
        updates = [(outcome.payment_id, *outcome_values(outcome)) for outcome in outcomes]
        attempts = [attempt_values(outcome) for outcome in outcomes]
        async with self._connection() as connection:
            found = await connection.fetch(
                RECORD_SQL,
                *_columns(updates, len(OUTCOME_COLUMNS) + 1),
                *_columns(attempts, len(ATTEMPT_COLUMNS)),
                now,
            )
        return in_order(outcomes, {row["payment_id"]: row for row in found})
