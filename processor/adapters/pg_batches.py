"""PostgreSQL's hot path: a batch of claims or of outcomes in ONE statement over asyncpg.

Why: profiling a worker that drains a backlog showed SQLAlchemy's per-row work (parameter
processing, executemany bookkeeping, result rows) and its per-transaction round trips (pool
pre-ping, BEGIN, COMMIT) as the largest single share of the worker's CPU. Here a whole batch
travels as a handful of typed arrays that ``unnest`` turns back into rows inside the server:
one round trip per batch, a few list appends per payment. The statements do exactly what
``SqlPaymentStore``'s portable versions do, and the store's tests run against both; SQLite
keeps the portable path.

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

from processor.adapters.store_rows import (
    ATTEMPT_COLUMNS,
    FINAL_SQL,
    SNAPSHOT_COLUMNS,
    ClaimItem,
    RecordItem,
    attempt_values,
    claim_conflict_sql,
    claim_values,
    first_claim_per_key,
    outcome_values,
    snapshot_of,
    why_not_claimed,
)
from processor.ports import Claimed, ClaimResult, PaymentSnapshot, StoreUnavailable

_COLUMNS = ", ".join(SNAPSHOT_COLUMNS)


def _claim_sql(reopen: bool) -> str:
    # ORDER BY: rows are inserted (and locked) in key order, so concurrent batches lock in
    # one global order and cannot deadlock each other.
    return f"""
INSERT INTO payments AS t (payment_id, status, attempts, amount, currency, merchant_id,
    fingerprint, lease_owner, lease_until, created_at, updated_at)
SELECT v.payment_id, 'processing', 1, v.amount, v.currency, v.merchant_id, v.fingerprint,
    v.lease_owner, v.lease_until, $8, $8
FROM unnest($1::text[], $2::int4[], $3::text[], $4::text[], $5::text[], $6::text[],
    $7::timestamptz[]) AS v(payment_id, amount, currency, merchant_id, fingerprint,
    lease_owner, lease_until)
ORDER BY v.payment_id
{claim_conflict_sql(reopen)}
"""  # noqa: S608 - constants only; every value is a bound parameter


CLAIM_SQL = {False: _claim_sql(False), True: _claim_sql(True)}

ROWS_SQL = f"SELECT {_COLUMNS} FROM payments WHERE payment_id = ANY($1::text[])"  # noqa: S608

# The UPDATE's RETURNING gives the new state of the rows it changed; the last SELECT reads the
# statement's snapshot, i.e. the unchanged state of the rows it skipped (already final).
RECORD_SQL = f"""
WITH v AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
        $6::text[]) AS v(payment_id, status, charge_id, error_code, error_message, reason)
), attempts AS (
    INSERT INTO payment_attempts (payment_id, attempt, outcome, http_status, error_code,
        error_message, replay_of, started_at, finished_at, duration_ms)
    SELECT * FROM unnest($7::text[], $8::int4[], $9::text[], $10::int4[], $11::text[],
        $12::text[], $13::text[], $14::timestamptz[], $15::timestamptz[], $16::float8[])
), updated AS (
    UPDATE payments AS t SET
        status = v.status, gateway_charge_id = COALESCE(v.charge_id, t.gateway_charge_id),
        last_error_code = v.error_code, last_error_message = v.error_message,
        dead_letter_reason = v.reason, lease_owner = NULL, lease_until = NULL,
        updated_at = $17
    FROM v
    WHERE t.payment_id = v.payment_id AND t.status NOT IN {FINAL_SQL}
    RETURNING {", ".join("t." + column for column in SNAPSHOT_COLUMNS)}
)
SELECT * FROM updated
UNION ALL
SELECT {_COLUMNS} FROM payments
WHERE payment_id = ANY($1::text[]) AND payment_id NOT IN (SELECT payment_id FROM updated)
"""  # noqa: S608 - constants only; every value is a bound parameter

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


_CLAIM_COLUMNS = (
    "payment_id",
    "amount",
    "currency",
    "merchant_id",
    "fingerprint",
    "lease_owner",
    "lease_until",
)


def _pick(values: dict[str, Any], names: Sequence[str]) -> tuple[Any, ...]:
    """``values`` in the order of the statement's ``unnest`` columns."""
    return tuple(values[name] for name in names)


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    out: list[list[Any]] = [[] for _ in range(width)]
    for row in rows:
        for index, value in enumerate(row):
            out[index].append(value)
    return out


class PgBatches:
    """Claims and outcomes of a batch, each one statement on a connection of our own.

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

    async def claim_many(self, items: Sequence[ClaimItem], now: datetime) -> list[ClaimResult]:
        results: list[ClaimResult | None] = [None] * len(items)
        async with self._connection() as connection:
            for reopen in (False, True):
                chosen = first_claim_per_key(items, reopen)
                if not chosen:
                    continue
                rows = [
                    _pick(claim_values(items[index], now), _CLAIM_COLUMNS)
                    for index in chosen.values()
                ]
                won = await connection.fetch(CLAIM_SQL[reopen], *_columns(rows, 7), now)
                for row in won:
                    results[chosen[row["payment_id"]]] = Claimed(attempts=int(row["attempts"]))
            losers = sorted({items[i].request.key for i, r in enumerate(results) if r is None})
            existing: dict[str, Any] = {}
            if losers:
                found = await connection.fetch(ROWS_SQL, losers)
                existing = {row["payment_id"]: row for row in found}
        return [
            result
            if result is not None
            else why_not_claimed(existing.get(item.request.key), item, now)
            for result, item in zip(results, items, strict=True)
        ]

    async def record_many(
        self, items: Sequence[RecordItem], now: datetime
    ) -> list[PaymentSnapshot]:
        outcomes = [(item.payment_id, *outcome_values(item)) for item in items]
        attempts = [_pick(attempt_values(item), ATTEMPT_COLUMNS) for item in items]
        async with self._connection() as connection:
            found = await connection.fetch(
                RECORD_SQL, *_columns(outcomes, 6), *_columns(attempts, 10), now
            )
        rows = {row["payment_id"]: row for row in found}
        missing = [item.payment_id for item in items if item.payment_id not in rows]
        if missing:
            raise StoreUnavailable(f"payment {missing[0]} is missing")
        return [snapshot_of(rows[item.payment_id]) for item in items]
