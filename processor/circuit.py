"""The worker's view of gateway health: the breaker's state and a gateway decorator that
reports every answer as it arrives.

The rules of the breaker live in ``processor.protection.breaker`` (a pure state machine).
"""

from __future__ import annotations

from collections.abc import Callable

from processor.ports import Gateway
from processor.protection.breaker import CircuitState
from retry.policy import GatewayAnswer
from schemas.payment import PaymentRequest

__all__ = ["CircuitState", "WatchedGateway"]


class WatchedGateway:
    """Gateway decorator telling ``on_answer(request, answer)`` about every answer, as it
    arrives (not when the payment finishes: outcomes of one batch commit finish together)."""

    def __init__(
        self, inner: Gateway, on_answer: Callable[[PaymentRequest, GatewayAnswer], None]
    ) -> None:
        self._inner = inner
        self._on_answer = on_answer

    async def charge(
        self, request: PaymentRequest, traceparent: str | None = None
    ) -> GatewayAnswer:
        answer = await self._inner.charge(request, traceparent)
        self._on_answer(request, answer)
        return answer
