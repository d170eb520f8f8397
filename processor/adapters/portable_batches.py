"""The portable ``BatchWriter``: claims and outcomes through SQLAlchemy, on any database it
can run ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` on (PostgreSQL, SQLite).

The claim is one upsert per ``reopen`` flag, so two workers holding copies of the same
payment cannot both get past it: the row lock of the upsert (PostgreSQL) or the single
writer (SQLite) decides, and the loser gets no row back. The fast paths run the same
statements their own way; the store's tests run every path.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from processor.adapters.store_batches import ClaimBatch, in_order
from processor.adapters.store_rows import (
    ATTEMPT_COLUMNS,
    CLAIM_COLUMNS,
    FINAL,
    OUTCOME_COLUMNS,
    REOPENABLE,
    attempt_values,
    outcome_values,
)
from processor.db import transaction
from processor.ports import AttemptOutcome, PaymentSnapshot, StoreUnavailable
from schemas.outcome import PaymentStatus
from schemas.tables import PaymentAttemptRow, PaymentRow

_payments = PaymentRow.__table__  # type: ignore[attr-defined]
_attempts = PaymentAttemptRow.__table__  # type: ignore[attr-defined]
_CLAIM_NAMES = [name for name, _ in CLAIM_COLUMNS]
_ATTEMPT_NAMES = [column.name for column in ATTEMPT_COLUMNS]
_OUTCOME_PARAMS = [f"b_{column.name}" for column in OUTCOME_COLUMNS]


def _claim_statement(insert: Any, reopen: bool) -> Any:
    table = _payments
    statement = insert(table)
    new = statement.excluded
    closed = [status for status in FINAL if not (reopen and PaymentStatus(status) in REOPENABLE)]
    claimable = and_(
        # Spelled out: an expanding IN cannot be used with executemany().
        *(table.c.status != status for status in closed),
        or_(
            table.c.lease_until.is_(None),
            table.c.lease_until < new.updated_at,
            table.c.lease_owner == new.lease_owner,
        ),
        true() if reopen else table.c.fingerprint == new.fingerprint,
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


def _record_statement() -> Any:
    """Each of ``OUTCOME_COLUMNS`` from its bound parameter; a final row is the authority and
    is never overwritten by a later, stale outcome."""
    table = _payments
    values: dict[str, Any] = {
        column.name: func.coalesce(bindparam(param), table.c[column.name])
        if column.keep_when_null
        else bindparam(param)
        for column, param in zip(OUTCOME_COLUMNS, _OUTCOME_PARAMS, strict=True)
    }
    return (
        update(table)
        .where(
            table.c.payment_id == bindparam("b_payment_id"),
            # Spelled out: an expanding IN cannot be used with executemany().
            *(table.c.status != status for status in FINAL),
        )
        .values(**values, lease_owner=None, lease_until=None, updated_at=bindparam("b_now"))
    )


class PortableBatches:
    """``BatchWriter`` over an SQLAlchemy engine: each batch is one pooled transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._claim = {reopen: _claim_statement(insert, reopen) for reopen in (False, True)}
        self._record = _record_statement()

    async def aclose(self) -> None:
        """Nothing of its own to close: the engine's pool is its owner's."""

    async def claim_many(self, batch: ClaimBatch) -> None:
        now = batch.now
        fixed = {
            "status": PaymentStatus.PROCESSING.value,
            "attempts": 1,
            "created_at": now,
            "updated_at": now,
        }
        async with transaction(self._engine, StoreUnavailable) as conn:
            for group in batch.groups:
                rows = [
                    {**dict(zip(_CLAIM_NAMES, row, strict=True)), **fixed} for row in group.rows
                ]
                # executemany with RETURNING: SQLAlchemy's "insertmanyvalues" sends multi-row
                # statements and caches the compiled form (no per-batch compile).
                claimed = await conn.execute(self._claim[group.reopen], rows)
                for payment_id, attempts in claimed.all():
                    group.won(payment_id, attempts)
            losers = batch.losers()
            if losers:
                found = await conn.execute(
                    select(_payments).where(_payments.c.payment_id.in_(losers))
                )
                batch.found({row.payment_id: row._mapping for row in found.all()})

    async def record_many(
        self, outcomes: Sequence[AttemptOutcome], now: datetime
    ) -> list[PaymentSnapshot]:
        attempt_rows = [
            dict(zip(_ATTEMPT_NAMES, attempt_values(outcome), strict=True)) for outcome in outcomes
        ]
        updates = [
            {
                "b_payment_id": outcome.payment_id,
                "b_now": now,
                **dict(zip(_OUTCOME_PARAMS, outcome_values(outcome), strict=True)),
            }
            for outcome in sorted(outcomes, key=lambda outcome: outcome.payment_id)  # lock order
        ]
        keys = sorted({outcome.payment_id for outcome in outcomes})
        async with transaction(self._engine, StoreUnavailable) as conn:
            await conn.execute(_attempts.insert(), attempt_rows)
            await conn.execute(self._record, updates)
            found = await conn.execute(select(_payments).where(_payments.c.payment_id.in_(keys)))
            rows = {row.payment_id: row._mapping for row in found.all()}
        return in_order(outcomes, rows)
