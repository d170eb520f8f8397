"""``SessionRows`` over async SQLAlchemy: the ``console_sessions`` rows of one namespace.

Every statement names its row by ``id_hash`` (the primary key) and the namespace, so admins of
other namespaces sharing the database never see each other's sessions; the sweep of expired
rows is one ``DELETE`` over the ``(namespace, expires_at)`` index.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from sqlalchemy import delete, select

from dlq_admin.console.sessions import StoredSession
from dlq_admin.store._base import SqlBase
from schemas.console_tables import ConsoleSessionRow

sessions = ConsoleSessionRow.__table__  # type: ignore[attr-defined]
_FIELDS = tuple(StoredSession.__dataclass_fields__)


class SqlSessionRows(SqlBase):
    """``SessionRows`` for one namespace: ``SqlSessionRows(engine, namespace)``."""

    async def add_session(self, row: StoredSession) -> None:
        async with self._tx() as conn:
            await conn.execute(sessions.insert().values(namespace=self._ns, **asdict(row)))

    async def get_session(self, id_hash: str) -> StoredSession | None:
        c = sessions.c
        async with self._tx() as conn:
            found = (
                await conn.execute(
                    select(*(c[name] for name in _FIELDS)).where(
                        c.id_hash == id_hash, c.namespace == self._ns
                    )
                )
            ).first()
        return StoredSession(**found._mapping) if found is not None else None

    async def delete_session(self, id_hash: str) -> None:
        c = sessions.c
        async with self._tx() as conn:
            await conn.execute(
                delete(sessions).where(c.id_hash == id_hash, c.namespace == self._ns)
            )

    async def delete_expired_sessions(self, now: datetime) -> int:
        c = sessions.c
        async with self._tx() as conn:
            result = await conn.execute(
                delete(sessions).where(c.namespace == self._ns, c.expires_at <= now)
            )
        return int(result.rowcount)
