"""Alembic environment: runs migrations over the async engine of ``PAYPROC_DATABASE_URL``."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import schemas.console_tables
import schemas.dlq_tables
import schemas.replay_job_tables
import schemas.tables  # noqa: F401  (register every table on SQLModel.metadata)
from processor.db import make_engine

target_metadata = SQLModel.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


def run() -> None:
    connection: Any = context.config.attributes.get("connection")
    if connection is not None:  # called from processor.migrate with an open connection
        _run(connection)
        return
    asyncio.run(_run_async(context.config.get_main_option("sqlalchemy.url") or ""))


run()
