"""SQLModel tables of the DLQ admin: one row per parked message, one per audited call.

``dlq_entries`` is written by the admin's ingest consumer (one row per parking, de-duplicated
on ``dedup_key``) and read by the admin API. Listing is keyset-paginated newest first on
``(dead_lettered_at, id)``; every list filter has an index that ends in those two columns, so
a page costs the same at entry 100 and at entry 100,000. ``fingerprint`` (reason + gateway
error code/HTTP status + exception type) is a column so grouping is a plain ``GROUP BY``.

Rows carry the namespace, so deployments sharing one database keep separate DLQs.
A discarded entry keeps its row with status ``discarded``; discarded and replayed rows are
deleted only by the admin's retention purge, after ``PAYPROC_DLQ_RETENTION_DAYS``.
Bodies and headers are stored with card-number look-alikes masked and NUL characters replaced
(PostgreSQL text cannot hold them).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from schemas.tables import utcnow


class DlqEntryRow(SQLModel, table=True):
    __tablename__ = "dlq_entries"
    __table_args__ = (
        UniqueConstraint("namespace", "dedup_key", name="uq_dlq_namespace_dedup"),
        Index("ix_dlq_time", "namespace", "dead_lettered_at", "id"),
        Index("ix_dlq_status_time", "namespace", "status", "dead_lettered_at", "id"),
        Index("ix_dlq_reason_time", "namespace", "reason", "dead_lettered_at", "id"),
        Index(
            "ix_dlq_status_reason_time", "namespace", "status", "reason", "dead_lettered_at", "id"
        ),
        Index("ix_dlq_payment_time", "namespace", "payment_id", "dead_lettered_at", "id"),
        Index("ix_dlq_merchant_time", "namespace", "merchant_id", "dead_lettered_at", "id"),
        Index(
            "ix_dlq_status_fingerprint_time",
            "namespace",
            "status",
            "fingerprint",
            "dead_lettered_at",
            "id",
        ),
        Index("ix_dlq_fingerprint_time", "namespace", "fingerprint", "dead_lettered_at", "id"),
        Index("ix_dlq_replay_of", "replay_of"),
    )

    id: str = Field(primary_key=True, max_length=36)
    namespace: str = Field(max_length=64)
    """The deployment (``PAYPROC_NAMESPACE``) whose ``N.dlq`` the message came from."""
    dedup_key: str = Field(max_length=100)
    """``park:<x-payproc-park-id>`` or ``broker:<sha256>``: a redelivery inserts nothing."""
    status: str = Field(max_length=16)
    reason: str = Field(max_length=32)
    fingerprint: str = Field(max_length=400)
    error_code: str | None = Field(default=None, max_length=100)
    error_message: str | None = Field(default=None, max_length=1000)
    http_status: int | None = None
    exception_type: str | None = Field(default=None, max_length=200)
    attempts: int = 0
    payment_id: str | None = Field(default=None, max_length=64)
    merchant_id: str | None = Field(default=None, max_length=255)
    dead_lettered_at: datetime
    ingested_at: datetime = Field(default_factory=utcnow)
    body: str = Field(sa_column=Column(Text, nullable=False))
    body_bytes: int = 0
    headers: str = Field(sa_column=Column(Text, nullable=False))
    """The message headers as a JSON object (x-death flattened to JSON values)."""
    content_type: str | None = Field(default=None, max_length=255)
    message_id: str | None = Field(default=None, max_length=255)
    correlation_id: str | None = Field(default=None, max_length=255)
    reply_to: str | None = Field(default=None, max_length=255)
    origin: str | None = Field(default=None, max_length=255)
    replay_of: str | None = Field(default=None, max_length=64)
    """The entry this parked message was a replay of (the previous round)."""
    replayed_at: datetime | None = None
    replayed_by: str | None = Field(default=None, max_length=100)
    replayed_body: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    """The edited body an edit-and-replay published; ``body`` keeps the original."""
    discarded_at: datetime | None = None
    discarded_by: str | None = Field(default=None, max_length=100)
    updated_at: datetime = Field(default_factory=utcnow)


class AuditLogRow(SQLModel, table=True):
    """One mutating or refused admin call: who, when, what, target, outcome."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_namespace_id", "namespace", "id"),
        Index("ix_audit_actor_id", "namespace", "actor", "id"),
        Index("ix_audit_action_id", "namespace", "action", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    namespace: str = Field(max_length=64)
    at: datetime = Field(default_factory=utcnow)
    actor: str | None = Field(default=None, max_length=100)
    """The token's name; ``None`` when no valid token was presented. Never the token."""
    role: str | None = Field(default=None, max_length=16)
    action: str = Field(max_length=64)
    target: str | None = Field(default=None, max_length=500)
    outcome: str = Field(max_length=32)
    status_code: int
    detail: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    client: str | None = Field(default=None, max_length=100)
