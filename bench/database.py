"""A fresh database per run (SQLite file or PostgreSQL database), read by the harness
through its own connection: counting final rows, the drain window, the steady rate."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import LOG_DIR, PG_SERVER, BenchError, Proc, short_id, wait_until


def epoch(value: Any) -> float | None:
    """A row timestamp (aware/naive datetime, ISO text or epoch number) as epoch seconds."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return float(value.timestamp())
    raise TypeError(f"not a timestamp: {value!r}")


class Database:
    """A fresh SQLite file or PostgreSQL database for one run; ``drop()`` removes it."""

    def __init__(self, kind: str, label: str) -> None:
        if kind not in ("sqlite", "postgres"):
            raise ValueError(kind)
        self.kind = kind
        self.name = f"payproc_bench_{label}_{short_id()}".replace("-", "_")
        self._sqlite: sqlite3.Connection | None = None
        self._pg: Any = None
        if kind == "sqlite":
            LOG_DIR.mkdir(parents=True, exist_ok=True)
            self.path = LOG_DIR / f"{self.name}.db"
            self.url = f"sqlite:///{self.path}"
        else:
            import psycopg

            with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.name}"')
            self.url = f"{PG_SERVER}/{self.name}"

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement on the harness's own connection (autocommit) and fetch rows."""
        if self.kind == "sqlite":
            if self._sqlite is None:
                self._sqlite = sqlite3.connect(
                    self.path, timeout=30, isolation_level=None, check_same_thread=False
                )
                self._sqlite.execute("PRAGMA busy_timeout=30000")
            return list(self._sqlite.execute(sql.replace("%s", "?"), params).fetchall())
        if self._pg is None:
            import psycopg

            self._pg = psycopg.connect(self.url, autocommit=True)
        with self._pg.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall()) if cur.description else []

    def count(self, table: str, statuses: Sequence[str]) -> int:
        marks = ",".join("%s" for _ in statuses)
        # Table and column names in this class are the harness's own constants, never input.
        sql = f"SELECT count(*) FROM {table} WHERE status IN ({marks})"  # noqa: S608
        try:
            return int(self.execute(sql, statuses)[0][0])
        except Exception as exc:  # the table does not exist until the worker created it
            if "no such table" in str(exc) or "does not exist" in str(exc):
                if self.kind == "postgres" and self._pg is not None:
                    self._pg.close()
                    self._pg = None
                return 0
            raise

    def window(self, start_column: str, table: str = "payments") -> tuple[float, float]:
        """(earliest start, latest ``updated_at``) of the rows, as epoch seconds."""
        sql = f"SELECT min({start_column}), max(updated_at) FROM {table}"  # noqa: S608
        row = self.execute(sql)[0]
        start, end = epoch(row[0]), epoch(row[1])
        if start is None or end is None:
            raise BenchError("no rows to time")
        return start, end

    def steady_rate(self, statuses: Sequence[str], table: str = "payments") -> float:
        """Payments/s between the 10th and the 90th percentile of completion times: the
        throughput while the worker was busy, without start-up or a retry tail."""
        marks = ",".join("%s" for _ in statuses)
        sql = f"SELECT updated_at FROM {table} WHERE status IN ({marks})"  # noqa: S608
        rows = self.execute(sql, statuses)
        times = sorted(t for t in (epoch(r[0]) for r in rows) if t is not None)
        if len(times) < 10:
            return 0.0
        low, high = times[len(times) // 10], times[(len(times) * 9) // 10]
        return (0.8 * len(times)) / (high - low) if high > low else 0.0

    def status_counts(self, table: str = "payments") -> dict[str, int]:
        rows = self.execute(f"SELECT status, count(*) FROM {table} GROUP BY status")  # noqa: S608
        return {str(status): int(n) for status, n in rows}

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
            self._sqlite = None
        if self._pg is not None:
            self._pg.close()
            self._pg = None

    def drop(self) -> None:
        self.close()
        if self.kind == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    Path(f"{self.path}{suffix}").unlink()
            return
        import psycopg

        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def pg_version() -> str:
    try:
        import psycopg

        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return str(row[0]).split()[0] if row else "?"
    except Exception as exc:
        return f"unavailable ({type(exc).__name__})"


async def wait_drained(
    db: Database,
    table: str,
    statuses: Sequence[str],
    expected: int,
    *,
    within: float,
    procs: Sequence[Proc],
    progress: Callable[[int], None] | None = None,
) -> None:
    """Until ``expected`` rows of ``table`` have a final status."""
    last_report = time.monotonic()

    def done() -> bool:
        nonlocal last_report
        count = db.count(table, statuses)
        if progress is not None and time.monotonic() - last_report > 5:
            last_report = time.monotonic()
            progress(count)
        return count >= expected

    await wait_until(done, within=within, what=f"{expected} final rows", procs=procs)
