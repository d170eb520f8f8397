"""``PaymentStore`` over SQLModel/SQLAlchemy (SQLite or PostgreSQL).

The claim is one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE ... RETURNING`` statement, so
two workers holding copies of the same payment cannot both get past it: the row lock of the
upsert (PostgreSQL) or the single writer (SQLite) decides, and the loser sees no row back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, false, or_, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from processor.ports import (
    AlreadyFinal,
    AttemptRecord,
    Claimed,
    ClaimResult,
    FingerprintConflict,
    HeldElsewhere,
    PaymentSnapshot,
    StoreUnavailable,
)
from schemas.outcome import FINAL_STATUSES, ErrorInfo, ParkReason, PaymentStatus
from schemas.payment import PaymentRequest
from schemas.tables import PaymentAttemptRow, PaymentRow, utcnow

_payments = PaymentRow.__table__  # type: ignore[attr-defined]
_attempts = PaymentAttemptRow.__table__  # type: ignore[attr-defined]
_FINAL = [s.value for s in FINAL_STATUSES]


class SqlPaymentStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._insert: Any = (
            postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        )

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self._engine.begin() as conn:
                yield conn
        except (OperationalError, InterfaceError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {str(exc)[:200]}") from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise StoreUnavailable(f"connection lost: {str(exc)[:200]}") from exc
            raise

    async def claim(
        self, request: PaymentRequest, owner: str, lease_seconds: float, reopen: bool
    ) -> ClaimResult:
        now = utcnow()
        until = now + timedelta(seconds=lease_seconds)
        table = _payments
        fingerprint = request.fingerprint()
        claimable = and_(
            or_(
                table.c.status.not_in(_FINAL),
                and_(
                    table.c.status == PaymentStatus.DEAD_LETTERED.value,
                    true() if reopen else false(),
                ),
            ),
            or_(
                table.c.lease_until.is_(None),
                table.c.lease_until < now,
                table.c.lease_owner == owner,
            ),
            or_(table.c.fingerprint == fingerprint, true() if reopen else false()),
        )
        statement = (
            self._insert(table)
            .values(
                payment_id=request.key,
                status=PaymentStatus.PROCESSING.value,
                attempts=1,
                amount=request.amount,
                currency=request.currency,
                merchant_id=request.merchant_id,
                fingerprint=fingerprint,
                lease_owner=owner,
                lease_until=until,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_update(
                index_elements=[table.c.payment_id],
                set_={
                    "status": PaymentStatus.PROCESSING.value,
                    "attempts": table.c.attempts + 1,
                    "lease_owner": owner,
                    "lease_until": until,
                    "updated_at": now,
                    "amount": request.amount,
                    "currency": request.currency,
                    "merchant_id": request.merchant_id,
                    "fingerprint": fingerprint,
                    "dead_letter_reason": None,
                },
                where=claimable,
            )
            .returning(table.c.attempts)
        )
        async with self._tx() as conn:
            claimed = (await conn.execute(statement)).first()
            if claimed is not None:
                return Claimed(attempts=int(claimed[0]))
            row = (
                await conn.execute(select(table).where(table.c.payment_id == request.key))
            ).first()
        if row is None:  # pragma: no cover - the upsert either inserted or found a row
            raise StoreUnavailable("payment row vanished during claim")
        if row.fingerprint != fingerprint and not reopen:
            return FingerprintConflict(
                ErrorInfo(
                    code="idempotency_conflict",
                    message="payment_id was already used with a different amount, "
                    "currency or merchant",
                )
            )
        snapshot = _snapshot(row._mapping)
        if snapshot.status.is_final and not (
            reopen and snapshot.status is PaymentStatus.DEAD_LETTERED
        ):
            return AlreadyFinal(snapshot)
        lease_until: datetime | None = row.lease_until
        seconds_left = (lease_until - now).total_seconds() if lease_until else 0.0
        return HeldElsewhere(max(seconds_left, 0.0))

    async def record(
        self,
        payment_id: str,
        owner: str,
        attempt: AttemptRecord,
        status: PaymentStatus,
        charge_id: str | None = None,
        error: ErrorInfo | None = None,
        park_reason: ParkReason | None = None,
    ) -> PaymentSnapshot:
        now = utcnow()
        table = _payments
        values: dict[str, Any] = {
            "status": status.value,
            "updated_at": now,
            "lease_owner": None,
            "lease_until": None,
            "last_error_code": error.code if error else None,
            "last_error_message": error.message[:1000] if error else None,
            "dead_letter_reason": park_reason.value if park_reason else None,
        }
        if charge_id is not None:
            values["gateway_charge_id"] = charge_id
        async with self._tx() as conn:
            await conn.execute(
                _attempts.insert().values(
                    payment_id=payment_id,
                    attempt=attempt.attempt,
                    outcome=attempt.outcome,
                    http_status=attempt.http_status,
                    error_code=attempt.error.code if attempt.error else None,
                    error_message=attempt.error.message[:1000] if attempt.error else None,
                    replay_of=attempt.replay_of,
                    started_at=attempt.started_at,
                    finished_at=attempt.finished_at,
                    duration_ms=(attempt.finished_at - attempt.started_at).total_seconds() * 1000,
                )
            )
            # A final row is the authority: never overwrite it with a later, stale outcome.
            updated = (
                await conn.execute(
                    update(table)
                    .where(table.c.payment_id == payment_id, table.c.status.not_in(_FINAL))
                    .values(**values)
                    .returning(*table.c)
                )
            ).first()
            if updated is None:
                updated = (
                    await conn.execute(select(table).where(table.c.payment_id == payment_id))
                ).first()
        if updated is None:
            raise StoreUnavailable(f"payment {payment_id} is missing")
        return _snapshot(updated._mapping)

    async def mark_dead_lettered(
        self, payment_id: str, reason: ParkReason, error: ErrorInfo
    ) -> PaymentSnapshot | None:
        table = _payments
        async with self._tx() as conn:
            row = (
                await conn.execute(
                    update(table)
                    .where(table.c.payment_id == payment_id, table.c.status.not_in(_FINAL))
                    .values(
                        status=PaymentStatus.DEAD_LETTERED.value,
                        updated_at=utcnow(),
                        lease_owner=None,
                        lease_until=None,
                        last_error_code=error.code,
                        last_error_message=error.message[:1000],
                        dead_letter_reason=reason.value,
                    )
                    .returning(*table.c)
                )
            ).first()
            if row is None:
                row = (
                    await conn.execute(select(table).where(table.c.payment_id == payment_id))
                ).first()
        return _snapshot(row._mapping) if row is not None else None

    async def release(self, payment_id: str, owner: str) -> None:
        async with self._tx() as conn:
            await conn.execute(
                update(_payments)
                .where(_payments.c.payment_id == payment_id, _payments.c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None, updated_at=utcnow())
            )

    async def get(self, payment_id: str) -> PaymentSnapshot | None:
        async with self._tx() as conn:
            row = (
                await conn.execute(select(_payments).where(_payments.c.payment_id == payment_id))
            ).first()
        return _snapshot(row._mapping) if row is not None else None


def _snapshot(row: Any) -> PaymentSnapshot:
    error = (
        ErrorInfo(code=row["last_error_code"], message=row["last_error_message"] or "")
        if row["last_error_code"]
        else None
    )
    return PaymentSnapshot(
        payment_id=row["payment_id"],
        status=PaymentStatus(row["status"]),
        attempts=row["attempts"],
        gateway_charge_id=row["gateway_charge_id"],
        last_error=error,
        dead_letter_reason=row["dead_letter_reason"],
        updated_at=row["updated_at"],
    )
