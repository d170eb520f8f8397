"""``PaymentStore`` over SQLModel/SQLAlchemy (SQLite or PostgreSQL): the worker's one store.

Claims and outcomes go by the batch (``claim_many``, ``record_many``): ``BatchingStore``
groups those of all in-flight payments into one transaction each, which is what lets one
worker keep a hundred payments in flight without a hundred commits. Each caller still waits
for *its* commit before anything is published or acked. A batch is written by a
``BatchWriter`` chosen for the database: ``PgBatches`` on PostgreSQL (one statement per
batch), ``SqliteBatches`` on a SQLite file (one thread call per transaction), otherwise, or
with ``fast_path=False``, the portable ``PortableBatches``. The rarer operations (poison
parking, lease release, reads) are portable SQLAlchemy everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from processor.adapters.pg_batches import PgBatches
from processor.adapters.portable_batches import PortableBatches
from processor.adapters.sqlite_batches import SqliteBatches
from processor.adapters.store_batches import BatchWriter, ClaimBatch
from processor.adapters.store_rows import FINAL, MESSAGE_LIMIT, ClaimItem, snapshot_of
from processor.db import transaction
from processor.ports import AttemptOutcome, ClaimResult, PaymentSnapshot, StoreUnavailable
from schemas.outcome import ErrorInfo, ParkReason, PaymentStatus
from schemas.payment import PaymentRequest
from schemas.tables import PaymentRow, utcnow

_payments = PaymentRow.__table__  # type: ignore[attr-defined]


def batch_writer(engine: AsyncEngine, fast_path: bool = True) -> BatchWriter:
    """The fastest ``BatchWriter`` for ``engine``'s database (the portable one without
    ``fast_path``: the tests run both)."""
    if fast_path and engine.dialect.name == "postgresql":
        return PgBatches(engine)
    if fast_path and engine.dialect.name == "sqlite" and SqliteBatches.usable(engine):
        return SqliteBatches(engine)
    return PortableBatches(engine)


class SqlPaymentStore:
    """``PaymentStore`` (and ``BatchedStore``) that writes batches through ``writer``."""

    def __init__(
        self, engine: AsyncEngine, *, fast_path: bool = True, writer: BatchWriter | None = None
    ) -> None:
        self._engine = engine
        self.writer = writer if writer is not None else batch_writer(engine, fast_path)

    async def aclose(self) -> None:
        """Close the writer's own connections (the engine is its owner's to dispose)."""
        await self.writer.aclose()

    def _tx(self) -> AbstractAsyncContextManager[AsyncConnection]:
        return transaction(self._engine, StoreUnavailable)

    async def claim(
        self, request: PaymentRequest, owner: str, lease_seconds: float, reopen: bool
    ) -> ClaimResult:
        return (await self.claim_many([ClaimItem(request, owner, lease_seconds, reopen)]))[0]

    async def claim_many(self, items: Sequence[ClaimItem]) -> list[ClaimResult]:
        """Claim a batch in one transaction; results are in the order of ``items``."""
        batch = ClaimBatch(items, utcnow())
        await self.writer.claim_many(batch)
        return batch.results()

    async def record(self, outcome: AttemptOutcome) -> PaymentSnapshot:
        return (await self.record_many([outcome]))[0]

    async def record_many(self, outcomes: Sequence[AttemptOutcome]) -> list[PaymentSnapshot]:
        """Commit a batch of attempt outcomes in one transaction (order of ``outcomes``)."""
        return await self.writer.record_many(outcomes, utcnow())

    async def mark_dead_lettered(
        self, payment_id: str, reason: ParkReason, error: ErrorInfo
    ) -> PaymentSnapshot | None:
        table = _payments
        async with self._tx() as conn:
            await conn.execute(
                update(table)
                .where(table.c.payment_id == payment_id, table.c.status.not_in(FINAL))
                .values(
                    status=PaymentStatus.DEAD_LETTERED.value,
                    updated_at=utcnow(),
                    lease_owner=None,
                    lease_until=None,
                    last_error_code=error.code,
                    last_error_message=error.message[:MESSAGE_LIMIT],
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
