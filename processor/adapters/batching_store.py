"""Group commits: many in-flight payments share one transaction per kind of write.

While one batch is being committed, new claims and outcomes queue up; the next batch takes
them all (up to ``max_batch``). No timer is involved, so a lone payment is never delayed and
a busy worker commits a few times per hundred payments instead of twice per payment. Each
caller awaits the future of its own item: ack-after-commit holds exactly as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from processor.adapters.store_batches import BatchedStore
from processor.adapters.store_rows import ClaimItem
from processor.ports import AttemptOutcome, ClaimResult, PaymentSnapshot
from schemas.outcome import ErrorInfo, ParkReason
from schemas.payment import PaymentRequest

In = TypeVar("In")
Out = TypeVar("Out")


class Batcher(Generic[In, Out]):
    def __init__(
        self, run: Callable[[Sequence[In]], Awaitable[list[Out]]], max_batch: int = 256
    ) -> None:
        self._run = run
        self._max_batch = max_batch
        self._pending: list[tuple[In, asyncio.Future[Out]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, item: In) -> Out:
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                results = await self._run([item for item, _ in batch])
            except BaseException as exc:  # every waiter sees the failure of its batch
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)


class BatchingStore:
    """``PaymentStore`` that batches claims and outcome records of concurrent payments into
    the ``claim_many`` and ``record_many`` calls of ``inner``."""

    def __init__(self, inner: BatchedStore, max_batch: int = 256) -> None:
        self._inner = inner
        self._claims: Batcher[ClaimItem, ClaimResult] = Batcher(inner.claim_many, max_batch)
        self._records: Batcher[AttemptOutcome, PaymentSnapshot] = Batcher(
            inner.record_many, max_batch
        )

    async def claim(
        self, request: PaymentRequest, owner: str, lease_seconds: float, reopen: bool
    ) -> ClaimResult:
        return await self._claims.submit(ClaimItem(request, owner, lease_seconds, reopen))

    async def record(self, outcome: AttemptOutcome) -> PaymentSnapshot:
        return await self._records.submit(outcome)

    async def mark_dead_lettered(
        self, payment_id: str, reason: ParkReason, error: ErrorInfo
    ) -> PaymentSnapshot | None:
        return await self._inner.mark_dead_lettered(payment_id, reason, error)

    async def release(self, payment_id: str, owner: str) -> None:
        await self._inner.release(payment_id, owner)

    async def get(self, payment_id: str) -> PaymentSnapshot | None:
        return await self._inner.get(payment_id)
