"""SQLite's hot path: a batch's whole transaction in ONE call on a thread of its own.

Why: through SQLAlchemy and aiosqlite, every statement of a batch is a separate hop to
aiosqlite's thread and back to the event loop, and SQLite's write lock is held from the
first write to the COMMIT. On a busy worker each hop waits for a turn of a loop that is
running a hundred payments, so the lock was held for several loop turns per batch; a
second worker on the same file waited on that lock (SQLite's busy handler sleeps 1, 2,
5, 10 ms...) and two workers did little more than one. Here ``BEGIN IMMEDIATE`` ... ``COMMIT``
runs start to finish on one thread, so the lock is held only for SQLite's own work, and the
per-row cost is a tuple instead of SQLAlchemy's parameter and result processing.

The statements do exactly what ``SqlPaymentStore``'s portable versions do (the store's
tests run both), and timestamps are written in the text form SQLAlchemy writes for
``UTCDateTime`` on SQLite, so every other reader (the admin API, the portable path) sees
the same rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, TypeVar

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

T = TypeVar("T")

_CLAIM_COLUMNS = (
    "payment_id",
    "status",
    "attempts",
    "amount",
    "currency",
    "merchant_id",
    "fingerprint",
    "lease_owner",
    "lease_until",
    "created_at",
    "updated_at",
)
_TIMESTAMPS = frozenset({"lease_until", "created_at", "updated_at", "started_at", "finished_at"})
_ROWS_PER_STATEMENT = 200  # 11 parameters a row, far below SQLite's 32,766

ATTEMPT_SQL = (
    f"INSERT INTO payment_attempts ({', '.join(ATTEMPT_COLUMNS)}) "  # noqa: S608 - constants
    f"VALUES ({', '.join('?' * len(ATTEMPT_COLUMNS))})"
)
RECORD_SQL = f"""
UPDATE payments SET status = ?, gateway_charge_id = COALESCE(?, gateway_charge_id),
    last_error_code = ?, last_error_message = ?, dead_letter_reason = ?,
    lease_owner = NULL, lease_until = NULL, updated_at = ?
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
    """The claim upsert for ``rows`` rows."""
    one_row = f"({', '.join('?' * len(_CLAIM_COLUMNS))})"
    return f"""
INSERT INTO payments AS t ({", ".join(_CLAIM_COLUMNS)}) VALUES {", ".join([one_row] * rows)}
{claim_conflict_sql(reopen)}
"""  # noqa: S608 - constants only; every value is a bound parameter


@lru_cache(maxsize=64)
def rows_sql(keys: int) -> str:
    return (
        f"SELECT {', '.join(SNAPSHOT_COLUMNS)} FROM payments "  # noqa: S608 - constants only
        f"WHERE payment_id IN ({', '.join('?' * keys)})"
    )


def _row_values(values: dict[str, Any], names: Sequence[str]) -> tuple[Any, ...]:
    return tuple(
        to_text(values[name]) if name in _TIMESTAMPS and values[name] is not None else values[name]
        for name in names
    )


def _snapshot_row(row: Sequence[Any]) -> dict[str, Any]:
    mapping = dict(zip(SNAPSHOT_COLUMNS, row, strict=True))
    mapping["updated_at"] = from_text(mapping["updated_at"])
    mapping["lease_until"] = from_text(mapping["lease_until"])
    return mapping


def _chunks(rows: Sequence[T], size: int) -> list[Sequence[T]]:
    return [rows[start : start + size] for start in range(0, len(rows), size)]


ClaimGroups = list[tuple[bool, list[tuple[Any, ...]]]]


class SqliteBatches:
    """Claims and outcomes of a batch, each one transaction on a connection and a thread of
    its own. The thread runs one transaction at a time, as SQLite writes one at a time."""

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

    async def claim_many(self, items: Sequence[ClaimItem], now: datetime) -> list[ClaimResult]:
        groups: ClaimGroups = []
        chosen_by_flag: dict[bool, dict[str, int]] = {}
        for reopen in (False, True):
            chosen = first_claim_per_key(items, reopen)
            if chosen:
                chosen_by_flag[reopen] = chosen
                groups.append(
                    (
                        reopen,
                        [
                            _row_values(claim_values(items[chosen[key]], now), _CLAIM_COLUMNS)
                            for key in sorted(chosen)
                        ],
                    )
                )
        copies = Counter(item.request.key for item in items)
        won, existing = await self._run(lambda connection: _claim(connection, groups, copies))
        results: list[ClaimResult | None] = [None] * len(items)
        for (reopen, _), winners in zip(groups, won, strict=True):
            chosen = chosen_by_flag[reopen]
            for payment_id, attempts in winners:
                results[chosen[payment_id]] = Claimed(attempts=int(attempts))
        rows = {row[0]: _snapshot_row(row) for row in existing}
        return [
            result if result is not None else why_not_claimed(rows.get(item.request.key), item, now)
            for result, item in zip(results, items, strict=True)
        ]

    async def record_many(
        self, items: Sequence[RecordItem], now: datetime
    ) -> list[PaymentSnapshot]:
        stamp = to_text(now)
        attempts = [_row_values(attempt_values(item), ATTEMPT_COLUMNS) for item in items]
        updates = [
            (*outcome_values(item), stamp, item.payment_id)
            for item in sorted(items, key=lambda item: item.payment_id)
        ]
        keys = sorted({item.payment_id for item in items})
        found = await self._run(lambda connection: _record(connection, attempts, updates, keys))
        rows = {row[0]: row for row in found}
        missing = [item.payment_id for item in items if item.payment_id not in rows]
        if missing:
            raise StoreUnavailable(f"payment {missing[0]} is missing")
        return [snapshot_of(_snapshot_row(rows[item.payment_id])) for item in items]


def _select_rows(connection: sqlite3.Connection, keys: Sequence[str]) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = []
    for chunk in _chunks(keys, _ROWS_PER_STATEMENT):
        found.extend(connection.execute(rows_sql(len(chunk)), chunk).fetchall())
    return found


def _claim(
    connection: sqlite3.Connection, groups: ClaimGroups, copies: Counter[str]
) -> tuple[list[list[tuple[str, int]]], list[tuple[Any, ...]]]:
    """The upserts of each group, then the rows of every key with a copy that did not win
    (the caller tells each such copy why)."""
    won: list[list[tuple[str, int]]] = []
    for reopen, rows in groups:
        winners: list[tuple[str, int]] = []
        for chunk in _chunks(rows, _ROWS_PER_STATEMENT):
            flat = [value for row in chunk for value in row]
            winners.extend(connection.execute(claim_sql(reopen, len(chunk)), flat).fetchall())
        won.append(winners)
    wins = Counter(payment_id for winners in won for payment_id, _ in winners)
    losers = sorted(key for key, count in copies.items() if count > wins[key])
    return won, _select_rows(connection, losers)


def _record(
    connection: sqlite3.Connection,
    attempts: list[tuple[Any, ...]],
    updates: list[tuple[Any, ...]],
    keys: Sequence[str],
) -> list[tuple[Any, ...]]:
    connection.executemany(ATTEMPT_SQL, attempts)
    connection.executemany(RECORD_SQL, updates)
    return _select_rows(connection, keys)
