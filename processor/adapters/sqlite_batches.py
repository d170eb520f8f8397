"""SQLite's hot path: a batch's whole transaction in ONE call on a thread of its own.

Why: through SQLAlchemy and aiosqlite, every statement of a batch is a separate hop to
aiosqlite's thread and back to the event loop, and SQLite's write lock is held from the
first write to the COMMIT. On a busy worker each hop waits for a turn of a loop that is
running a hundred payments, so the lock was held for several loop turns per batch; a
second worker on the same file waited on that lock (SQLite's busy handler sleeps 1, 2,
5, 10 ms...) and two workers did little more than one. Here ``BEGIN IMMEDIATE`` ... ``COMMIT``
runs start to finish on one thread, so the lock is held only for SQLite's own work, and the
per-row cost is a tuple instead of SQLAlchemy's parameter and result processing.

The statements do exactly what ``PortableBatches`` does (the store's tests run both), and
timestamps are written in the text form SQLAlchemy writes for ``UTCDateTime`` on SQLite, so
every other reader (the admin API, the portable path) sees the same rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from processor.adapters.store_batches import ClaimBatch, ClaimGroup, in_order
from processor.adapters.store_rows import (
    ATTEMPT_COLUMNS,
    CLAIM_COLUMNS,
    FINAL_SQL,
    SNAPSHOT_COLUMNS,
    attempt_values,
    claim_conflict_sql,
    outcome_assignments,
    outcome_values,
)
from processor.ports import AttemptOutcome, PaymentSnapshot, StoreUnavailable

T = TypeVar("T")

_CLAIM_TIMESTAMPS = [sql_type == "timestamptz" for _, sql_type in CLAIM_COLUMNS]
_ATTEMPT_TIMESTAMPS = [column.timestamp for column in ATTEMPT_COLUMNS]
_ROWS_PER_STATEMENT = 200  # 9 parameters a claim row, far below SQLite's 32,766

ATTEMPT_SQL = (
    f"INSERT INTO payment_attempts ({', '.join(c.name for c in ATTEMPT_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(ATTEMPT_COLUMNS))})"
)
RECORD_SQL = f"""
UPDATE payments SET {outcome_assignments(lambda _: "?")}, updated_at = ?
WHERE payment_id = ? AND status NOT IN {FINAL_SQL}
"""  # noqa: S608 - constants only; every value is a bound parameter


def to_text(value: datetime) -> str:
    """A timestamp as SQLAlchemy stores ``UTCDateTime`` on SQLite: UTC, no offset, always
    with microseconds (the lease comparison in SQL compares these strings)."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def from_text(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


@lru_cache(maxsize=64)
def claim_sql(reopen: bool, rows: int) -> str:
    """The claim upsert for ``rows`` rows: ``CLAIM_COLUMNS``, then created and updated."""
    one_row = f"({', '.join('?' * len(CLAIM_COLUMNS))}, 'processing', 1, ?, ?)"
    return f"""
INSERT INTO payments AS t ({", ".join(name for name, _ in CLAIM_COLUMNS)}, status, attempts,
    created_at, updated_at)
VALUES {", ".join([one_row] * rows)}
{claim_conflict_sql(reopen)}
"""  # noqa: S608 - constants only; every value is a bound parameter


@lru_cache(maxsize=64)
def rows_sql(keys: int) -> str:
    return (
        f"SELECT {', '.join(SNAPSHOT_COLUMNS)} FROM payments "  # noqa: S608 - constants only
        f"WHERE payment_id IN ({', '.join('?' * keys)})"
    )


def _texts(values: Sequence[Any], timestamps: Sequence[bool]) -> tuple[Any, ...]:
    """``values`` with their timestamps (where ``timestamps`` says) as ``to_text`` writes them."""
    return tuple(
        to_text(value) if timestamp and value is not None else value
        for value, timestamp in zip(values, timestamps, strict=True)
    )


def _snapshot_row(row: Sequence[Any]) -> dict[str, Any]:
    mapping = dict(zip(SNAPSHOT_COLUMNS, row, strict=True))
    mapping["updated_at"] = from_text(mapping["updated_at"])
    mapping["lease_until"] = from_text(mapping["lease_until"])
    return mapping


def _chunks(rows: Sequence[T], size: int) -> list[Sequence[T]]:
    return [rows[start : start + size] for start in range(0, len(rows), size)]


class SqliteBatches:
    """``BatchWriter`` for a SQLite file: a batch of claims or of outcomes is one
    transaction on a connection and a thread of its own. The thread runs one transaction
    at a time, as SQLite writes one at a time."""

    def __init__(self, engine: AsyncEngine, busy_timeout: float = 30.0) -> None:
        if not self.usable(engine):
            raise ValueError("the SQLite fast path needs a database file")
        self._path = str(engine.url.database)
        self._busy_timeout_ms = round(busy_timeout * 1000)
        self._closed = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="payproc-sqlite")
        self._connection: sqlite3.Connection | None = None  # touched only on that thread
        self._lock_fd: int | None = None  # likewise
        # Whoever disposes of the engine closes this connection too.
        event.listen(engine.sync_engine, "engine_disposed", self._on_engine_disposed)

    @staticmethod
    def usable(engine: AsyncEngine) -> bool:
        database = engine.url.database
        return bool(database) and database != ":memory:" and not engine.url.query

    def _on_engine_disposed(self, _engine: object) -> None:
        self._shut()

    async def aclose(self) -> None:
        closing = self._shut()
        if closing is not None:
            await asyncio.wrap_future(closing)

    def _shut(self) -> Future[None] | None:
        """Close the connection on its thread, then let the thread end (once)."""
        if self._closed:
            return None
        self._closed = True
        closing = self._executor.submit(self._close)
        self._executor.shutdown(wait=False)
        return closing

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
        lock_fd, self._lock_fd = self._lock_fd, None
        if lock_fd is not None:
            os.close(lock_fd)

    def _open(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite3.connect(
                self._path,
                timeout=self._busy_timeout_ms / 1000,
                isolation_level=None,  # BEGIN and COMMIT are ours
                check_same_thread=False,  # closed by the disposal hook's task on this thread
            )
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
            self._connection = connection
        return self._connection

    @contextlib.contextmanager
    def _writers_queue(self) -> Iterator[None]:
        """Workers sharing the file take turns on an ``flock`` before SQLite's own lock.

        SQLite's busy handler polls: a writer that finds the file locked sleeps 1, 2, 5,
        10 ms... and retries, so with two workers the file sat idle between their batches.
        A process waiting on ``flock`` wakes the moment the holder lets go. Where the lock
        file cannot be opened (a read-only directory), SQLite's own lock still serialises."""
        if self._lock_fd is None:
            with contextlib.suppress(OSError):
                self._lock_fd = os.open(self._path + "-payproc.lock", os.O_RDWR | os.O_CREAT)
        if self._lock_fd is None:
            yield
            return
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    async def _run(self, transaction: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``transaction`` between ``BEGIN IMMEDIATE`` and ``COMMIT`` on the thread."""

        def run() -> T:
            connection = self._open()
            with self._writers_queue():
                try:
                    # IMMEDIATE: take the write lock up front, waiting in the busy handler;
                    # a deferred transaction that reads first cannot wait for it later.
                    connection.execute("BEGIN IMMEDIATE")
                    result = transaction(connection)
                    connection.execute("COMMIT")
                    return result
                except BaseException:
                    if connection.in_transaction:
                        connection.execute("ROLLBACK")
                    raise

        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, run)
        except sqlite3.OperationalError as exc:  # locked, I/O error, file gone
            raise StoreUnavailable(f"OperationalError: {str(exc)[:200]}") from exc
        except RuntimeError as exc:  # the executor was shut down: the engine is gone
            raise StoreUnavailable(f"store closed: {exc}") from exc

    async def claim_many(self, batch: ClaimBatch) -> None:
        stamp = to_text(batch.now)
        groups = [
            (group, [(*_texts(row, _CLAIM_TIMESTAMPS), stamp, stamp) for row in group.rows])
            for group in batch.groups
        ]
        # Runs on the writer's thread while this coroutine waits: nothing else touches
        # ``batch`` until it returns.
        found = await self._run(lambda connection: _claim(connection, batch, groups))
        batch.found({row[0]: _snapshot_row(row) for row in found})

    async def record_many(
        self, outcomes: Sequence[AttemptOutcome], now: datetime
    ) -> list[PaymentSnapshot]:
        stamp = to_text(now)
        attempts = [_texts(attempt_values(o), _ATTEMPT_TIMESTAMPS) for o in outcomes]
        updates = [
            (*outcome_values(outcome), stamp, outcome.payment_id)
            for outcome in sorted(outcomes, key=lambda outcome: outcome.payment_id)
        ]
        keys = sorted({outcome.payment_id for outcome in outcomes})
        found = await self._run(lambda connection: _record(connection, attempts, updates, keys))
        return in_order(outcomes, {row[0]: _snapshot_row(row) for row in found})


def _select_rows(connection: sqlite3.Connection, keys: Sequence[str]) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = []
    for chunk in _chunks(keys, _ROWS_PER_STATEMENT):
        found.extend(connection.execute(rows_sql(len(chunk)), chunk).fetchall())
    return found


def _claim(
    connection: sqlite3.Connection,
    batch: ClaimBatch,
    groups: list[tuple[ClaimGroup, list[tuple[Any, ...]]]],
) -> list[tuple[Any, ...]]:
    """The upserts of each group, then the rows of every key with a copy that did not win."""
    for group, rows in groups:
        for chunk in _chunks(rows, _ROWS_PER_STATEMENT):
            flat = [value for row in chunk for value in row]
            won = connection.execute(claim_sql(group.reopen, len(chunk)), flat)
            for payment_id, attempts in won:
                group.won(payment_id, attempts)
    return _select_rows(connection, batch.losers())


def _record(
    connection: sqlite3.Connection,
    attempts: list[tuple[Any, ...]],
    updates: list[tuple[Any, ...]],
    keys: Sequence[str],
) -> list[tuple[Any, ...]]:
    connection.executemany(ATTEMPT_SQL, attempts)
    connection.executemany(RECORD_SQL, updates)
    return _select_rows(connection, keys)
