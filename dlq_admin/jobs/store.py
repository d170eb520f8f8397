"""``JobStore`` over async SQLAlchemy (SQLite or PostgreSQL), in two parts: ``sql_jobs``
(jobs, figures, state, lease) and ``sql_entries`` (frozen entries, outcomes, retention)."""

from __future__ import annotations

from dlq_admin.jobs.sql_entries import SqlJobEntries
from dlq_admin.jobs.sql_jobs import SqlJobs

__all__ = ["SqlJobStore"]


class SqlJobStore(SqlJobs, SqlJobEntries):
    """The ``JobStore`` port for one namespace: ``SqlJobStore(engine, namespace)``."""
