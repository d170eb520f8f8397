"""Wait out a database outage instead of failing the message.

When the store is down or locked, a payment must neither be acked without its outcome nor
burn its broker delivery budget in a hot requeue loop. This wrapper retries
``StoreUnavailable`` with capped exponential back-off for up to ``patience`` seconds while the
message stays unacked; prefetch bounds how many messages wait this way.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from processor.ports import (
    AttemptOutcome,
    ClaimResult,
    PaymentSnapshot,
    PaymentStore,
    StoreUnavailable,
)
from schemas.outcome import ErrorInfo, ParkReason
from schemas.payment import PaymentRequest

log = logging.getLogger("payproc.store")
T = TypeVar("T")


class ResilientStore:
    """``PaymentStore`` that retries ``inner``'s ``StoreUnavailable`` for ``patience`` s."""

    def __init__(self, inner: PaymentStore, patience: float = 120.0) -> None:
        self._inner = inner
        self._patience = patience

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T:
        try:  # the fast path: no retry machinery while the store is healthy
            return await operation()
        except StoreUnavailable:
            pass
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(StoreUnavailable),
            stop=stop_after_delay(self._patience),
            wait=wait_exponential(multiplier=0.05, max=5),
            reraise=True,
            before_sleep=lambda state: log.warning(
                "store unavailable, waiting",
                extra={
                    "attempt": state.attempt_number,
                    "error": str(state.outcome.exception()) if state.outcome else None,
                },
            ),
        ):
            with attempt:
                return await operation()
        raise AssertionError("unreachable")  # pragma: no cover

    async def claim(
        self, request: PaymentRequest, owner: str, lease_seconds: float, reopen: bool
    ) -> ClaimResult:
        return await self._call(lambda: self._inner.claim(request, owner, lease_seconds, reopen))

    async def record(self, outcome: AttemptOutcome) -> PaymentSnapshot:
        return await self._call(lambda: self._inner.record(outcome))

    async def mark_dead_lettered(
        self, payment_id: str, reason: ParkReason, error: ErrorInfo
    ) -> PaymentSnapshot | None:
        return await self._call(lambda: self._inner.mark_dead_lettered(payment_id, reason, error))

    async def release(self, payment_id: str, owner: str) -> None:
        await self._call(lambda: self._inner.release(payment_id, owner))

    async def get(self, payment_id: str) -> PaymentSnapshot | None:
        return await self._call(lambda: self._inner.get(payment_id))
