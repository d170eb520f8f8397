"""SQLModel tables of replay jobs: one row per job, one row per entry frozen into a job.

``replay_jobs`` holds everything a job needs to continue after a restart: its state, pacing,
canary, and the lease (``lease_owner`` until ``lease_expires_at``) that lets exactly one
admin process run it at a time. ``replay_job_entries`` is the frozen selection: the entry
ids that matched when the job was created, in the order the job publishes them (interleaved
by merchant), each with its progress (``waiting``, ``claimed``, ``published``, ``succeeded``,
``failed``, ``skipped``). ``replay_job_counts`` holds how many of a job's entries are in
each state, changed in the transaction that moves the entries: a job's figures are a read of
a few rows, whatever the job's size, and they add up at every read.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text
from sqlmodel import Field, SQLModel

from schemas.tables import utcnow


class ReplayJobRow(SQLModel, table=True):
    __tablename__ = "replay_jobs"
    __table_args__ = (
        Index("ix_replay_jobs_time", "namespace", "created_at", "id"),
        Index("ix_replay_jobs_state", "namespace", "state"),
    )

    id: str = Field(primary_key=True, max_length=36)
    namespace: str = Field(max_length=64)
    state: str = Field(max_length=16)
    selection: str = Field(sa_column=Column(Text, nullable=False))
    """The ``JobSelection`` as JSON, for the record (the entries themselves are frozen)."""
    rate: float
    ramp: str | None = Field(default=None, max_length=400)
    """The ramp's batch sizes as JSON (``[1, 2, 5, 20]``), or null."""
    canary_size: int | None = None
    canary_max_failure_share: float | None = None
    canary_done: bool = False
    """The canary passed, or an operator resumed the job after it paused it."""
    paused_reason: str | None = Field(default=None, max_length=500)
    self_paused: bool = False
    """The job paused itself (its canary failed), as opposed to an operator pausing it."""
    total: int = 0
    created_by: str = Field(max_length=100)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    """When the first entry was published (for the measured rate)."""
    last_published_at: datetime | None = None
    """When the latest batch was published (the measured rate spans the two)."""
    finished_at: datetime | None = None
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_expires_at: datetime | None = None


class ReplayJobEntryRow(SQLModel, table=True):
    __tablename__ = "replay_job_entries"
    __table_args__ = (
        Index("ix_replay_job_entries_state", "job_id", "state", "position"),
        Index("ix_replay_job_entries_entry", "entry_id"),
    )

    job_id: str = Field(primary_key=True, max_length=36)
    position: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    entry_id: str = Field(max_length=36)
    payment_id: str | None = Field(default=None, max_length=64)
    merchant_id: str | None = Field(default=None, max_length=255)
    state: str = Field(default="waiting", max_length=16)
    note: str | None = Field(default=None, max_length=64)
    """Why it was skipped (``payment_succeeded``, ``status_discarded``, ...)."""
    published_at: datetime | None = None
    settled_at: datetime | None = None


class ReplayJobCountRow(SQLModel, table=True):
    """How many frozen entries of a job are in ``state`` (skipped ones by ``note``, their
    reason; ``''`` for the other states)."""

    __tablename__ = "replay_job_counts"

    job_id: str = Field(primary_key=True, max_length=36)
    state: str = Field(primary_key=True, max_length=16)
    note: str = Field(default="", primary_key=True, max_length=64)
    entries: int = 0
