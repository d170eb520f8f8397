"""Database engines: one place that turns ``PAYPROC_DATABASE_URL`` into an async engine.

SQLite runs in WAL mode with a busy timeout so the admin API can read while a worker writes;
its writes are serialised through one pooled connection (SQLite allows one writer anyway).
PostgreSQL goes through asyncpg.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

import schemas.console_tables
import schemas.dlq_tables
import schemas.replay_job_tables
import schemas.tables  # noqa: F401  (registers the tables on SQLModel.metadata)


def async_url(url: str) -> str:
    """Pick the async driver for a plain ``sqlite://`` or ``postgresql://`` URL."""
    if url.startswith("sqlite:"):
        return "sqlite+aiosqlite:" + url[len("sqlite:") :]
    if url.startswith("postgres://"):
        return "postgresql+asyncpg://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url[len("postgresql://") :]
    return url


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An async engine with the right pool and pragmas for the URL's database."""
    if is_sqlite(url):
        engine = create_async_engine(
            async_url(url),
            pool_size=1,
            max_overflow=0,
            pool_timeout=120,
            connect_args={"timeout": 30},
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_timeout=60,
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


async def create_schema(engine: AsyncEngine) -> None:
    """Bring the schema to the newest migration (idempotent; creates an empty database)."""
    from processor.migrate import upgrade

    await upgrade(engine)


# Deadlock and serialization failure: the transaction was rolled back and may simply be retried.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


@asynccontextmanager
async def transaction(
    engine: AsyncEngine, unavailable: Callable[[str], Exception]
) -> AsyncIterator[AsyncConnection]:
    """``engine.begin()`` that turns "the database is not there right now" into
    ``unavailable(reason)`` (connection refused or lost, locked, deadlocked) and lets every
    other error, a bug, through unchanged."""
    try:
        async with engine.begin() as conn:
            yield conn
    except (OperationalError, InterfaceError, OSError, TimeoutError) as exc:
        raise unavailable(f"{type(exc).__name__}: {str(exc)[:200]}") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise unavailable(f"connection lost: {str(exc)[:200]}") from exc
        if getattr(exc.orig, "sqlstate", None) in RETRYABLE_SQLSTATES:
            raise unavailable(f"transaction aborted: {str(exc)[:200]}") from exc
        raise


_PROBE_SECONDS = 2.0


async def reachable(engine: AsyncEngine | None) -> bool:
    """Whether ``engine`` answers ``SELECT 1`` within two seconds (a readiness probe: any
    failure is "not ready", never an error)."""
    if engine is None:
        return False
    with contextlib.suppress(Exception):
        async with asyncio.timeout(_PROBE_SECONDS), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            return True
    return False
