"""``DlqStore`` over async SQLAlchemy (SQLite or PostgreSQL), one part per capability.

``entries`` ingests and reads DLQ entries, ``claims`` changes their state (replay claims and
their settlement, discards), ``reads`` reads the worker's payments and the audit log; ``_base``
holds the tables and turns database rows into the typed rows of ``dlq_admin.rows``.
"""

from __future__ import annotations

from dlq_admin.store.claims import SqlClaims
from dlq_admin.store.entries import SqlEntries
from dlq_admin.store.reads import SqlAudit, SqlPayments

__all__ = ["SqlDlqStore"]


class SqlDlqStore(SqlEntries, SqlClaims, SqlPayments, SqlAudit):
    """The whole ``DlqStore`` port for one namespace: ``SqlDlqStore(engine, namespace)``."""
