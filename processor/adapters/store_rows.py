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

FINAL_SQL = "('succeeded', 'declined', 'dead_lettered')"
SNAPSHOT_COLUMNS = (
    "payment_id",
    "status",
    "attempts",
    "gateway_charge_id",
    "last_error_code",
    "last_error_message",
    "dead_letter_reason",
    "updated_at",
    "fingerprint",
    "lease_until",
)
"""The columns the fast paths read back: what ``snapshot_of`` and ``why_not_claimed`` need."""
ATTEMPT_COLUMNS = (
    "payment_id",
    "attempt",
    "outcome",
    "http_status",
    "error_code",
    "error_message",
    "replay_of",
    "started_at",
    "finished_at",
    "duration_ms",
)


def claim_conflict_sql(reopen: bool) -> str:
    """The ``ON CONFLICT`` clause of the fast paths' claim upsert (PostgreSQL and SQLite
    alike, the target table aliased ``t``): the rules of ``SqlPaymentStore``'s portable claim.
    A row is taken over only if it is not final (a replay may re-open a dead-lettered one,
    never a succeeded or declined one), its lease is free, expired or our own, and, unless
    re-opening, the amount, currency and merchant are the same."""
    if reopen:
        status_ok = "t.status NOT IN ('succeeded', 'declined')"
        same_payment = "TRUE"
    else:
        status_ok = f"t.status NOT IN {FINAL_SQL}"
        same_payment = "t.fingerprint = excluded.fingerprint"
    return f"""ON CONFLICT (payment_id) DO UPDATE SET
    status = 'processing', attempts = t.attempts + 1, lease_owner = excluded.lease_owner,
    lease_until = excluded.lease_until, updated_at = excluded.updated_at,
    amount = excluded.amount, currency = excluded.currency,
    merchant_id = excluded.merchant_id, fingerprint = excluded.fingerprint,
    dead_letter_reason = NULL
WHERE {status_ok}
    AND (t.lease_until IS NULL OR t.lease_until < excluded.updated_at
         OR t.lease_owner = excluded.lease_owner)
    AND {same_payment}
RETURNING payment_id, attempts"""


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


def outcome_values(item: RecordItem) -> tuple[str, str | None, str | None, str | None, str | None]:
    """What an outcome writes into its ``payments`` row: status, charge id, error code,
    error message (at most 1,000 characters) and park reason."""
    error = item.error
    return (
        item.status.value,
        item.charge_id,
        error.code if error else None,
        error.message[:1000] if error else None,
        item.park_reason.value if item.park_reason else None,
    )


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
