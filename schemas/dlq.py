"""Models of the DLQ admin API (SPEC, "Admin API"): pure data, no I/O.

The service layer (``dlq_admin``) returns these and the FastAPI layer serialises them; the
OpenAPI document is generated from them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.outcome import ErrorInfo, ParkReason, PaymentStatus

MAX_PAGE = 500
MAX_BULK = 10_000


class EntryStatus(StrEnum):
    """Lifecycle of a DLQ entry. ``replaying`` is the short window of an in-flight replay."""

    PARKED = "parked"
    REPLAYING = "replaying"
    REPLAYED = "replayed"
    DISCARDED = "discarded"


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"


class ErrorDetail(BaseModel):
    """Why a message was parked, as far as its headers tell."""

    code: str | None = None
    message: str | None = None
    http_status: int | None = None
    exception_type: str | None = None


class DlqEntrySummary(BaseModel):
    """One entry as listed (no body)."""

    id: str
    payment_id: str | None
    merchant_id: str | None
    reason: ParkReason
    status: EntryStatus
    error: ErrorDetail
    attempts: int
    fingerprint: str
    dead_lettered_at: datetime
    ingested_at: datetime
    replay_of: str | None = Field(description="the entry this one is a replay of")
    replayed_at: datetime | None
    replayed_by: str | None
    discarded_at: datetime | None
    discarded_by: str | None


class MessageProperties(BaseModel):
    content_type: str | None
    message_id: str | None
    correlation_id: str | None
    reply_to: str | None


class AttemptView(BaseModel):
    """One gateway attempt (from the worker's ``payment_attempts`` table)."""

    attempt: int
    outcome: str
    http_status: int | None
    error_code: str | None
    error_message: str | None
    replay_of: str | None = Field(description="the DLQ entry whose replay made this attempt")
    started_at: datetime
    finished_at: datetime
    duration_ms: float


class RoundView(BaseModel):
    """One parking of the same message: an entry of the replay chain, oldest first."""

    id: str
    status: EntryStatus
    reason: ParkReason
    error: ErrorDetail
    attempts: int
    dead_lettered_at: datetime
    replayed_at: datetime | None
    replayed_by: str | None


class PaymentView(BaseModel):
    """``GET /payments/{payment_id}`` (SPEC)."""

    payment_id: str
    status: PaymentStatus
    attempts: int
    gateway_charge_id: str | None
    last_error: ErrorInfo | None
    dead_letter_reason: str | None = None
    updated_at: datetime


class DlqEntryDetail(DlqEntrySummary):
    """One entry whole: original body and headers, the replay rounds and attempt history."""

    body: Any = Field(description="the original body: parsed JSON, or text if it is not JSON")
    body_is_json: bool
    body_bytes: int
    headers: dict[str, Any]
    properties: MessageProperties
    origin: str | None
    replayed_body: Any | None = Field(
        default=None, description="the edited body an edit-and-replay published"
    )
    replayed_as: list[str] = Field(description="entries created when a replay failed again")
    rounds: list[RoundView] = Field(description="every parking of this message, oldest first")
    history: list[AttemptView] = Field(description="gateway attempts of the payment")
    payment: PaymentView | None


class DlqPage(BaseModel):
    items: list[DlqEntrySummary]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next (older) page")


class QueueStats(BaseModel):
    name: str
    waiting: int | None = Field(
        description="messages in the DLQ queue not yet indexed; null if the broker is unreachable"
    )


class Readiness(BaseModel):
    status: str
    checks: dict[str, bool]


class DlqStats(BaseModel):
    total: int
    parked: int
    by_reason: dict[str, int]
    by_status: dict[str, int]
    parked_by_reason: dict[str, int]
    oldest_parked_at: datetime | None
    oldest_parked_age_seconds: float | None
    queue: QueueStats
    retention: RetentionStats | None = None


class RetentionStats(BaseModel):
    """Discarded and replayed entries are purged ``days`` after their last change."""

    days: float
    purge_next_24h: int = Field(description="entries that will be purged in the next 24 h")


class DlqGroup(BaseModel):
    fingerprint: str
    reason: ParkReason
    error_code: str | None
    http_status: int | None
    exception_type: str | None
    count: int
    first_seen: datetime
    last_seen: datetime
    sample_id: str
    sample_error: str | None


class DlqGroups(BaseModel):
    status: EntryStatus
    items: list[DlqGroup]


class ReplayRequest(BaseModel):
    """Optional body of a single replay: ``payload`` replaces the body (re-validated)."""

    model_config = ConfigDict(extra="forbid")

    payload: dict[str, Any] | None = Field(
        default=None, description="an edited payment request; validated as the worker does"
    )


class ReplayResult(BaseModel):
    id: str
    status: EntryStatus
    payment_id: str | None
    edited: bool
    replayed_at: datetime | None
    replayed_by: str | None


class BulkSelection(BaseModel):
    """Which parked entries a bulk call targets: exactly one of ``ids``, ``reason``, ``group``."""

    model_config = ConfigDict(extra="forbid")

    ids: list[str] | None = Field(default=None, min_length=1, max_length=MAX_BULK)
    reason: ParkReason | None = None
    group: str | None = Field(
        default=None, min_length=1, max_length=400, description="a fingerprint from /dlq/groups"
    )
    limit: int = Field(default=100, ge=1, le=MAX_BULK)
    dry_run: bool = False

    @model_validator(mode="after")
    def _exactly_one_selector(self) -> BulkSelection:
        chosen = [n for n in ("ids", "reason", "group") if getattr(self, n) is not None]
        if len(chosen) != 1:
            raise ValueError("give exactly one of ids, reason or group")
        return self


class Skipped(BaseModel):
    id: str
    why: str


class Failed(BaseModel):
    id: str
    error: str


class BulkReplayResult(BaseModel):
    dry_run: bool
    replayed: int = Field(description="entries published (0 in a dry run)")
    would_replay: int = Field(description="in a dry run: entries that would be published")
    ids: list[str] = Field(description="ids replayed, or that would be in a dry run")
    skipped: list[Skipped]
    failed: list[Failed]


class BulkDiscardResult(BaseModel):
    dry_run: bool
    discarded: int
    ids: list[str]
    skipped: list[Skipped]


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str | None
    role: str | None
    action: str
    target: str | None
    outcome: str
    status_code: int
    detail: str | None
    client: str | None


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_cursor: str | None


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer: a readable ``detail`` and a machine ``code``."""

    detail: str
    code: str
    errors: list[FieldError] | None = None


class Health(BaseModel):
    status: str
