"""``PaymentStore`` over SQLModel/SQLAlchemy (SQLite or PostgreSQL).

The claim is an ``INSERT ... ON CONFLICT DO UPDATE ... WHERE ... RETURNING`` statement, so two
workers holding copies of the same payment cannot both get past it: the row lock of the
upsert (PostgreSQL) or the single writer (SQLite) decides, and the loser gets no row back.

Every operation has a batch form (``claim_many``, ``record_many``): ``BatchingStore`` groups
the claims and outcomes of all in-flight payments into one transaction each, which is what
lets one worker keep a hundred payments in flight without a hundred commits. Each caller
still waits for *its* commit before anything is published or acked.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from processor.adapters.pg_batches import PgBatches
from processor.adapters.sqlite_batches import SqliteBatches
from processor.adapters.store_rows import (
    ClaimItem,
    RecordItem,
    attempt_values,
    claim_values,
    first_claim_per_key,
    outcome_values,
    snapshot_of,
    why_not_claimed,
)
from processor.db import transaction
from processor.ports import (
    AttemptRecord,
    Claimed,
    ClaimResult,
    PaymentSnapshot,
    StoreUnavailable,
)
from schemas.outcome import FINAL_STATUSES, ErrorInfo, ParkReason, PaymentStatus
from schemas.payment import PaymentRequest
from schemas.tables import PaymentAttemptRow, PaymentRow, utcnow

_payments = PaymentRow.__table__  # type: ignore[attr-defined]
_attempts = PaymentAttemptRow.__table__  # type: ignore[attr-defined]
_FINAL = [s.value for s in FINAL_STATUSES]
_OUTCOME_PARAMS = ("b_status", "b_charge_id", "b_error_code", "b_error_message", "b_reason")


class SqlPaymentStore:
    """The portable store. Claims and outcomes take a fast path unless ``fast_path`` is off
    (the tests run both): ``PgBatches`` on PostgreSQL (one statement per batch),
    ``SqliteBatches`` on a SQLite file (one thread call per batch transaction)."""

    def __init__(self, engine: AsyncEngine, *, fast_path: bool = True) -> None:
        self._engine = engine
        on_postgres = engine.dialect.name == "postgresql"
        self._insert: Any = postgresql.insert if on_postgres else sqlite.insert
        self._fast: PgBatches | SqliteBatches | None = None
        if fast_path and on_postgres:
            self._fast = PgBatches(engine)
        elif fast_path and engine.dialect.name == "sqlite" and SqliteBatches.usable(engine):
            self._fast = SqliteBatches(engine)

    async def aclose(self) -> None:
        """Close the fast path's own connections (the engine is its owner's to dispose)."""
        if self._fast is not None:
            await self._fast.aclose()

    def _tx(self) -> AbstractAsyncContextManager[AsyncConnection]:
        return transaction(self._engine, StoreUnavailable)

    # ---- claim ------------------------------------------------------------------------

    async def claim(
        self, request: PaymentRequest, owner: str, lease_seconds: float, reopen: bool
    ) -> ClaimResult:
        return (await self.claim_many([ClaimItem(request, owner, lease_seconds, reopen)]))[0]

    async def claim_many(self, items: Sequence[ClaimItem]) -> list[ClaimResult]:
        """Claim a batch in one transaction; results are in the order of ``items``."""
        now = utcnow()
        if self._fast is not None:
            return await self._fast.claim_many(items, now)
        results: list[ClaimResult | None] = [None] * len(items)
        async with self._tx() as conn:
            # One upsert per reopen flag.
            for reopen in (False, True):
                chosen = first_claim_per_key(items, reopen)
                if not chosen:
                    continue
                # Rows in key order: concurrent batches then lock rows in one global order
                # and cannot deadlock each other on PostgreSQL.
                rows = [claim_values(items[chosen[key]], now) for key in sorted(chosen)]
                # executemany with RETURNING: SQLAlchemy's "insertmanyvalues" sends multi-row
                # statements and caches the compiled form (no per-batch compile).
                claimed = await conn.execute(self._claim_statement(reopen), rows)
                for payment_id, attempts in claimed.all():
                    results[chosen[payment_id]] = Claimed(attempts=int(attempts))
            losers = {items[i].request.key for i, r in enumerate(results) if r is None}
            existing: dict[str, Any] = {}
            if losers:
                found = await conn.execute(
                    select(_payments).where(_payments.c.payment_id.in_(sorted(losers)))
                )
                existing = {row.payment_id: row._mapping for row in found.all()}
        for index, item in enumerate(items):
            if results[index] is None:
                results[index] = why_not_claimed(existing.get(item.request.key), item, now)
        return [r for r in results if r is not None]

    def _claim_statement(self, reopen: bool) -> Any:
        table = _payments
        statement = self._insert(table)
        new = statement.excluded
        if reopen:
            status_ok = and_(
                table.c.status != PaymentStatus.SUCCEEDED.value,
                table.c.status != PaymentStatus.DECLINED.value,
            )
            same_payment = true()
        else:
            # Spelled out: an expanding IN cannot be used with executemany().
            status_ok = and_(*(table.c.status != status for status in _FINAL))
            same_payment = table.c.fingerprint == new.fingerprint
        claimable = and_(
            status_ok,
            or_(
                table.c.lease_until.is_(None),
                table.c.lease_until < new.updated_at,
                table.c.lease_owner == new.lease_owner,
            ),
            same_payment,
        )
        return statement.on_conflict_do_update(
            index_elements=[table.c.payment_id],
            set_={
                "status": PaymentStatus.PROCESSING.value,
                "attempts": table.c.attempts + 1,
                "lease_owner": new.lease_owner,
                "lease_until": new.lease_until,
                "updated_at": new.updated_at,
                "amount": new.amount,
                "currency": new.currency,
                "merchant_id": new.merchant_id,
                "fingerprint": new.fingerprint,
                "dead_letter_reason": None,
            },
            where=claimable,
        ).returning(table.c.payment_id, table.c.attempts)

    # ---- record -----------------------------------------------------------------------

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
        item = RecordItem(payment_id, owner, attempt, status, charge_id, error, park_reason)
        return (await self.record_many([item]))[0]

    async def record_many(self, items: Sequence[RecordItem]) -> list[PaymentSnapshot]:
        """Commit a batch of attempt outcomes in one transaction (order of ``items``)."""
        now = utcnow()
        if self._fast is not None:
            return await self._fast.record_many(items, now)
        table = _payments
        attempt_rows = [attempt_values(item) for item in items]
        updates = [
            {
                "b_payment_id": item.payment_id,
                **dict(zip(_OUTCOME_PARAMS, outcome_values(item), strict=True)),
            }
            for item in sorted(items, key=lambda item: item.payment_id)  # lock order
        ]
        # A final row is the authority: never overwrite it with a later, stale outcome.
        statement = (
            update(table)
            .where(
                table.c.payment_id == bindparam("b_payment_id"),
                # Spelled out: an expanding IN cannot be used with executemany().
                *(table.c.status != status for status in _FINAL),
            )
            .values(
                status=bindparam("b_status"),
                gateway_charge_id=func.coalesce(
                    bindparam("b_charge_id"), table.c.gateway_charge_id
                ),
                last_error_code=bindparam("b_error_code"),
                last_error_message=bindparam("b_error_message"),
                dead_letter_reason=bindparam("b_reason"),
                lease_owner=None,
                lease_until=None,
                updated_at=now,
            )
        )
        async with self._tx() as conn:
            await conn.execute(_attempts.insert(), attempt_rows)
            await conn.execute(statement, updates)
            found = await conn.execute(
                select(table).where(table.c.payment_id.in_({i.payment_id for i in items}))
            )
            rows = {row.payment_id: row for row in found.all()}
        missing = [i.payment_id for i in items if i.payment_id not in rows]
        if missing:
            raise StoreUnavailable(f"payment {missing[0]} is missing")
        return [snapshot_of(rows[item.payment_id]._mapping) for item in items]

    # ---- the rest -------------------------------------------------------------------------

    async def mark_dead_lettered(
        self, payment_id: str, reason: ParkReason, error: ErrorInfo
    ) -> PaymentSnapshot | None:
        table = _payments
        async with self._tx() as conn:
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
            )
            row = (
                await conn.execute(select(table).where(table.c.payment_id == payment_id))
            ).first()
        return snapshot_of(row._mapping) if row is not None else None

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
        return snapshot_of(row._mapping) if row is not None else None
