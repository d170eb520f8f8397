"""Create and drop a throw-away PostgreSQL database for one test run."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

import asyncpg


def _run(coro: Coroutine[Any, Any, None]) -> None:
    # Run on a private thread: the caller may be inside pytest-asyncio's running loop.
    error: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            error.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if error:
        raise error[0]


def create_database(admin_url: str, name: str) -> None:
    async def main() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    _run(main())


def drop_database(admin_url: str, name: str) -> None:
    async def main() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    _run(main())


def upgrade_schema(url: str) -> None:
    """Run the migrations on a fresh database, as ``payproc db upgrade`` would."""
    from processor.db import make_engine
    from processor.migrate import upgrade

    async def main() -> None:
        engine = make_engine(url)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    _run(main())
