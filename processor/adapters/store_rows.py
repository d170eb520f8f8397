"""The rows of the worker's store as plain values, shared by the portable SQL store and
PostgreSQL's batch statements: what a claim or an outcome carries in, and how a stored row
turns back into a ``PaymentSnapshot`` or a ``ClaimResult``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from processor.ports import (
    AlreadyFinal,
    AttemptRecord,
    ClaimResult,
    FingerprintConflict,
    HeldElsewhere,
    PaymentSnapshot,
    StoreUnavailable,
)
from schemas.outcome import ErrorInfo, ParkReason, PaymentStatus
from schemas.payment import PaymentRequest
from schemas.tables import last_error_of

CONFLICT = ErrorInfo(
    code="idempotency_conflict",
    message="payment_id was already used with a different amount, currency or merchant",
)


@dataclass(frozen=True, slots=True)
class ClaimItem:
    request: PaymentRequest
    owner: str
    lease_seconds: float
    reopen: bool


@dataclass(frozen=True, slots=True)
class RecordItem:
    payment_id: str
    owner: str
    attempt: AttemptRecord
    status: PaymentStatus
    charge_id: str | None = None
    error: ErrorInfo | None = None
    park_reason: ParkReason | None = None


def first_claim_per_key(items: Sequence[ClaimItem], reopen: bool) -> dict[str, int]:
    """Index of the first claim of each payment_id among ``items`` with this ``reopen`` flag.

    A payment_id appearing twice in a batch goes in once; the second copy then finds the
    first one's lease and is held off."""
    chosen: dict[str, int] = {}
    for index, item in enumerate(items):
        if item.reopen is reopen and item.request.key not in chosen:
            chosen[item.request.key] = index
    return chosen


def claim_values(item: ClaimItem, now: datetime) -> dict[str, Any]:
    """The ``payments`` row a claim inserts (or upserts with)."""
    request = item.request
    return {
        "payment_id": request.key,
        "status": PaymentStatus.PROCESSING.value,
        "attempts": 1,
        "amount": request.amount,
        "currency": request.currency,
        "merchant_id": request.merchant_id,
        "fingerprint": request.fingerprint(),
        "lease_owner": item.owner,
        "lease_until": now + timedelta(seconds=item.lease_seconds),
        "created_at": now,
        "updated_at": now,
    }


def why_not_claimed(row: Mapping[Any, Any] | None, item: ClaimItem, now: datetime) -> ClaimResult:
    """Why a claim found the row but did not win it (``row`` is the stored row)."""
    if row is None:  # pragma: no cover - the upsert either inserted or found a row
        raise StoreUnavailable("payment row vanished during claim")
    if row["fingerprint"] != item.request.fingerprint() and not item.reopen:
        return FingerprintConflict(CONFLICT)
    snapshot = snapshot_of(row)
    if snapshot.status.is_final and not (
        item.reopen and snapshot.status is PaymentStatus.DEAD_LETTERED
    ):
        return AlreadyFinal(snapshot)
    lease_until: datetime | None = row["lease_until"]
    seconds_left = (lease_until - now).total_seconds() if lease_until else 0.0
    return HeldElsewhere(max(seconds_left, 0.0))


def attempt_values(item: RecordItem) -> dict[str, Any]:
    attempt = item.attempt
    return {
        "payment_id": item.payment_id,
        "attempt": attempt.attempt,
        "outcome": attempt.outcome,
        "http_status": attempt.http_status,
        "error_code": attempt.error.code if attempt.error else None,
        "error_message": attempt.error.message[:1000] if attempt.error else None,
        "replay_of": attempt.replay_of,
        "started_at": attempt.started_at,
        "finished_at": attempt.finished_at,
        "duration_ms": (attempt.finished_at - attempt.started_at).total_seconds() * 1000,
    }


def snapshot_of(row: Mapping[Any, Any]) -> PaymentSnapshot:
    return PaymentSnapshot(
        payment_id=row["payment_id"],
        status=PaymentStatus(row["status"]),
        attempts=row["attempts"],
        gateway_charge_id=row["gateway_charge_id"],
        last_error=last_error_of(row),
        dead_letter_reason=row["dead_letter_reason"],
        updated_at=row["updated_at"],
    )
