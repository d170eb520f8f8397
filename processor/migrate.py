"""Schema migrations (Alembic) and the start-up check that the schema is current.

``payproc db upgrade`` creates or upgrades the schema. The worker and the admin API refuse
to run against a PostgreSQL schema that is behind the code, with a line saying what to run;
the embedded SQLite default is upgraded automatically so ``make demo`` stays one command.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from processor.errors import ProcessorError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class SchemaBehind(ProcessorError):
    """The database schema is older than the code; the message says what to run."""


def alembic_config(url: str = "") -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url)
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations found"
    return head


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


def _upgrade(connection: Connection, target: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, target)


async def upgrade(engine: AsyncEngine, target: str = "head") -> None:
    """Apply migrations up to ``target`` in one transaction.

    Two processes starting at once on a fresh SQLite file (a worker and the admin API) would
    race to create the same tables: SQLite's driver does not wrap DDL in a transaction. A
    lock file next to the database serialises them; PostgreSQL's transactional DDL and
    Alembic's version row need no help.
    """
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    with _file_lock(f"{database}.migrate.lock" if database else None):
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade, target)


@contextmanager
def _file_lock(path: str | None) -> Iterator[None]:
    if path is None or path == ":memory:.migrate.lock":
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


async def ensure_current(engine: AsyncEngine, *, auto_upgrade: bool) -> None:
    """Upgrade (SQLite) or refuse to start (PostgreSQL) when the schema is behind."""
    current = await current_revision(engine)
    head = head_revision()
    if current == head:
        return
    if auto_upgrade:
        await upgrade(engine)
        return
    raise SchemaBehind(
        f"payproc: database schema is at {current or 'nothing (empty database)'} but this "
        f"version needs {head}; run `payproc db upgrade` first"
    )


def describe(engine: Any) -> str:
    return f"{engine.dialect.name} {engine.url.render_as_string(hide_password=True)}"
