"""The fake Stripe's knobs and ledger: payment intents, stored idempotent answers, counters."""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from aiohttp import web

from processor.fake_server import FakeRuntime, FaultKnobs, counts_by_status

__all__ = ["STATE", "FakeStripeConfig", "Intent", "Stored", "StripeState"]


@dataclass(slots=True)
class FakeStripeConfig(FaultKnobs):
    """The fake Stripe's knobs (see the package docstring); ``POST /_config`` changes them.

    A server error is a 500 with ``Stripe-Should-Retry: true``, a timeout a 500 too."""

    processing_seconds: float = 0.5
    search_lag: float = 0.0
    seed: int | None = None


@dataclass(slots=True)
class Intent:
    """A payment intent as created; ``body`` is what Stripe would answer for it."""

    id: str
    body: dict[str, Any]
    created: float
    payment_id: str


@dataclass(slots=True)
class Stored:
    """The answer stored for an idempotency key, with the parameters it was made with."""

    params: list[tuple[str, str]]
    status: int
    body: bytes


@dataclass(slots=True)
class StripeState(FakeRuntime):
    """The ledger, the intents and the idempotency store; in-process tests read it."""

    config: FakeStripeConfig
    requests: int = 0
    charges_by_payment: dict[str, int] = field(default_factory=dict)
    intents: dict[str, Intent] = field(default_factory=dict)
    stored: dict[str, Stored] = field(default_factory=dict)
    answers: Counter[int] = field(default_factory=Counter)
    replays: int = 0

    def __post_init__(self) -> None:
        self.rng.seed(self.config.seed)

    def current(self, intent: Intent) -> dict[str, Any]:
        """The intent as it is now: ``processing`` settles after ``processing_seconds``."""
        body = intent.body
        settled = time.monotonic() - intent.created >= self.config.processing_seconds
        if body["status"] == "processing" and settled:
            body["status"] = "succeeded"
            body["amount_received"] = body["amount"]
            body["latest_charge"] = "ch_" + os.urandom(12).hex()
        return body

    def stats(self, *, with_payments: bool) -> dict[str, Any]:
        """The ``GET /_stats`` body; ``charges_by_key`` is keyed by payment id."""
        statuses = Counter(self.current(i)["status"] for i in self.intents.values())
        result: dict[str, Any] = {
            "requests": self.requests,
            "charges": sum(self.charges_by_payment.values()),
            "charged_payments": len(self.charges_by_payment),
            "double_charged": [k for k, n in self.charges_by_payment.items() if n > 1],
            "replays": self.replays,
            "intents": dict(statuses),
            "answers": counts_by_status(self.answers),
            "config": asdict(self.config),
        }
        if with_payments:
            result["charges_by_key"] = dict(self.charges_by_payment)
        return result


STATE: Final = web.AppKey("payproc_fake_stripe_state", StripeState)
