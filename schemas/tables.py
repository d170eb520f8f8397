"""SQLModel tables of the worker's store: one row per payment, one per gateway attempt.

Timestamps are timezone-aware UTC in Python; SQLModel's ``UTCDateTime`` stores them
as ``timestamptz`` on PostgreSQL and as UTC text on SQLite. Nothing that can hold a card
number is stored: the payment-method token, description and metadata stay in the message.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from schemas.outcome import ErrorInfo


def utcnow() -> datetime:
    """Aware UTC now, the one clock the store uses."""
    return datetime.now(UTC)


class PaymentRow(SQLModel, table=True):
    __tablename__ = "payments"
    __table_args__ = (Index("ix_payments_status_updated", "status", "updated_at"),)

    payment_id: str = Field(primary_key=True, max_length=36)
    status: str = Field(max_length=16)
    attempts: int = 0
    amount: int
    currency: str = Field(max_length=3)
    merchant_id: str = Field(max_length=255, index=True)
    fingerprint: str = Field(max_length=300)
    gateway_charge_id: str | None = Field(default=None, max_length=255)
    last_error_code: str | None = Field(default=None, max_length=64)
    last_error_message: str | None = Field(default=None, max_length=1000)
    dead_letter_reason: str | None = Field(default=None, max_length=32)
    lease_owner: str | None = Field(default=None, max_length=128)
    lease_until: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class PaymentAttemptRow(SQLModel, table=True):
    """One gateway attempt: the attempt history shown by the admin API."""

    __tablename__ = "payment_attempts"

    id: int | None = Field(default=None, primary_key=True)
    payment_id: str = Field(max_length=36, index=True)
    attempt: int
    outcome: str = Field(max_length=40)
    http_status: int | None = None
    error_code: str | None = Field(default=None, max_length=64)
    error_message: str | None = Field(default=None, max_length=1000)
    replay_of: str | None = Field(default=None, max_length=64)
    started_at: datetime
    finished_at: datetime
    duration_ms: float


def last_error_of(row: Mapping[str, Any]) -> ErrorInfo | None:
    """The ``ErrorInfo`` stored in a payments row's ``last_error_*`` columns, if any."""
    if not row["last_error_code"]:
        return None
    return ErrorInfo(code=row["last_error_code"], message=row["last_error_message"] or "")
