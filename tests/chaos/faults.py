"""Faults the chaos suite injects into a worker process, from outside the product.

``python -m tests.chaos.worker`` runs the real ``payproc worker`` with one of these wrapped
around its gateway adapter (``WorkerOptions.wrap_gateway``): the fault sits where a real
gateway would, inside the metrics and circuit-breaker wrappers, so the worker sees it exactly
as it would see the gateway misbehave.
"""

from __future__ import annotations

import logging
import os
import random

from processor.ports import Gateway
from retry.policy import GatewayAnswer
from schemas.payment import PaymentRequest

log = logging.getLogger("payproc.chaos")


class DieAfterCharge:
    """With probability ``rate``, kill the process right after the gateway answered.

    A SIGKILL from outside lands at a random point; the most dangerous window (the gateway
    has answered, maybe charged, but nothing is committed or acked yet) is narrow. This hits
    it on purpose: the redelivered message must be charged exactly once.
    """

    def __init__(self, inner: Gateway, rate: float, rng: random.Random | None = None) -> None:
        self._inner = inner
        self._rate = rate
        self._rng = rng or random.Random()

    async def charge(
        self, request: PaymentRequest, traceparent: str | None = None
    ) -> GatewayAnswer:
        answer = await self._inner.charge(request, traceparent)
        if self._rng.random() < self._rate:
            log.warning(
                "chaos: dying after the gateway answered", extra={"payment_id": request.key}
            )
            logging.shutdown()
            os._exit(137)
        return answer
