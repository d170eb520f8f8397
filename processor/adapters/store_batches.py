"""Batches of claims and outcomes: the strategy protocol the SQL store writes through, and
the bookkeeping every strategy shares.

``SqlPaymentStore`` commits a batch of claims, or of outcomes, in one transaction through a
``BatchWriter``: the portable SQLAlchemy one, or a database's fast path (PostgreSQL's one
statement per batch, SQLite's one thread call per transaction). Each writer only runs its
statements; ``ClaimBatch`` decides which copy of a payment goes in and turns what came back
into a ``ClaimResult`` per item, and ``in_order`` matches stored rows to outcomes, so the
rules are written once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from processor.adapters.store_rows import REOPENABLE, ClaimItem, claim_values, snapshot_of
from processor.ports import (
    AlreadyFinal,
    AttemptOutcome,
    Claimed,
    ClaimResult,
    FingerprintConflict,
    HeldElsewhere,
    PaymentSnapshot,
    PaymentStore,
    StoreUnavailable,
)
from schemas.outcome import ErrorInfo


class BatchWriter(Protocol):
    """How a batch reaches one kind of database: one transaction per call."""

    async def claim_many(self, batch: ClaimBatch) -> None:
        """Run the upsert of each of ``batch.groups``, telling the group each claim that
        ``won``; then hand the batch the stored rows of its ``losers()`` (``found``)."""
        ...

    async def record_many(
        self, outcomes: Sequence[AttemptOutcome], now: datetime
    ) -> list[PaymentSnapshot]:
        """Commit the outcomes; their rows as stored, in the order of ``outcomes``."""
        ...

    async def aclose(self) -> None:
        """Close what the writer opened itself (the engine is its owner's)."""
        ...


class BatchedStore(PaymentStore, Protocol):
    """A ``PaymentStore`` that also takes claims and outcomes by the batch."""

    async def claim_many(self, items: Sequence[ClaimItem]) -> list[ClaimResult]: ...

    async def record_many(self, outcomes: Sequence[AttemptOutcome]) -> list[PaymentSnapshot]: ...


CONFLICT = ErrorInfo(
    code="idempotency_conflict",
    message="payment_id was already used with a different amount, currency or merchant",
)


class ClaimGroup:
    """The claims of a batch with one ``reopen`` flag: the rows of one upsert."""

    def __init__(
        self, reopen: bool, chosen: dict[str, int], rows: list[tuple[Any, ...]], batch: ClaimBatch
    ) -> None:
        self.reopen = reopen
        self.rows = rows
        """``CLAIM_COLUMNS`` values, one tuple a payment, in key order."""
        self._chosen = chosen
        self._batch = batch

    def won(self, payment_id: str, attempts: int) -> None:
        """The upsert returned ``payment_id``'s row: its claim went through."""
        self._batch.settle(self._chosen[payment_id], Claimed(attempts=int(attempts)))


class ClaimBatch:
    """The claims of one batch: which rows each upsert carries, which won, and why the
    others did not.

    Claims are grouped by their ``reopen`` flag (one upsert each). A payment_id appearing
    twice in a group goes in once; the second copy then finds the first one's lease and is
    held off. Rows are in key order, so concurrent batches lock rows in one global order and
    cannot deadlock each other on PostgreSQL.
    """

    def __init__(self, items: Sequence[ClaimItem], now: datetime) -> None:
        self.items = items
        self.now = now
        self._results: list[ClaimResult | None] = [None] * len(items)
        self._found: Mapping[str, Mapping[Any, Any]] = {}
        self.groups: list[ClaimGroup] = []
        for reopen in (False, True):
            chosen: dict[str, int] = {}
            for index, item in enumerate(items):
                if item.reopen is reopen and item.request.key not in chosen:
                    chosen[item.request.key] = index
            if chosen:
                chosen = dict(sorted(chosen.items()))
                rows = [claim_values(items[index], now) for index in chosen.values()]
                self.groups.append(ClaimGroup(reopen, chosen, rows, self))

    def settle(self, index: int, result: ClaimResult) -> None:
        self._results[index] = result

    def losers(self) -> list[str]:
        """The payment_ids (sorted) with a copy that did not win: their rows are needed."""
        return sorted(
            {
                item.request.key
                for item, result in zip(self.items, self._results, strict=True)
                if result is None
            }
        )

    def found(self, rows: Mapping[str, Mapping[Any, Any]]) -> None:
        """The stored rows of ``losers()``, by payment_id (``SNAPSHOT_COLUMNS``)."""
        self._found = rows

    def results(self) -> list[ClaimResult]:
        """One result per item, in the order of the items."""
        return [
            result if result is not None else self._refused(item)
            for result, item in zip(self._results, self.items, strict=True)
        ]

    def _refused(self, item: ClaimItem) -> ClaimResult:
        """Why a claim found the row but did not win it."""
        row = self._found.get(item.request.key)
        if row is None:  # pragma: no cover - the upsert either inserted or found a row
            raise StoreUnavailable("payment row vanished during claim")
        if row["fingerprint"] != item.request.fingerprint() and not item.reopen:
            return FingerprintConflict(CONFLICT)
        snapshot = snapshot_of(row)
        if snapshot.status.is_final and not (item.reopen and snapshot.status in REOPENABLE):
            return AlreadyFinal(snapshot)
        lease_until: datetime | None = row["lease_until"]
        seconds_left = (lease_until - self.now).total_seconds() if lease_until else 0.0
        return HeldElsewhere(max(seconds_left, 0.0))


def in_order(
    outcomes: Sequence[AttemptOutcome], rows: Mapping[str, Mapping[Any, Any]]
) -> list[PaymentSnapshot]:
    """The stored rows (by payment_id) of ``outcomes`` as snapshots, in their order."""
    missing = [outcome.payment_id for outcome in outcomes if outcome.payment_id not in rows]
    if missing:
        raise StoreUnavailable(f"payment {missing[0]} is missing")
    return [snapshot_of(rows[outcome.payment_id]) for outcome in outcomes]
