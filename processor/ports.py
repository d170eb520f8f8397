"""The ports use cases depend on. Adapters implement them; tests hand-write fakes.

Nothing in here knows about aio-pika, httpx or SQLAlchemy.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from processor.envelope import Envelope
from processor.errors import PublishFailed, StoreUnavailable
from retry.policy import GatewayAnswer, LookupAnswer
from schemas.outcome import ErrorInfo, ParkReason, PaymentResult, PaymentStatus, RetryScheduled
from schemas.payment import PaymentRequest


class Gateway(Protocol):
    async def charge(
        self, request: PaymentRequest, traceparent: str | None = None
    ) -> GatewayAnswer:
        """Charge ``request`` with its payment_id as Idempotency-Key; never raises for HTTP.

        ``traceparent`` (W3C) is forwarded to the gateway so the call joins the trace."""
        ...


class ChargeLookup(Protocol):
    async def lookup(self, payment_id: str) -> LookupAnswer:
        """Ask the gateway whether a charge was made with ``payment_id`` as the key.

        Never raises for HTTP or network trouble: that is ``LookupUnavailable``."""
        ...


@dataclass(frozen=True, slots=True)
class PaymentSnapshot:
    payment_id: str
    status: PaymentStatus
    attempts: int
    gateway_charge_id: str | None
    last_error: ErrorInfo | None
    dead_letter_reason: str | None
    updated_at: datetime

    def result(self) -> PaymentResult:
        return PaymentResult(
            payment_id=self.payment_id,
            status=self.status,
            attempts=self.attempts,
            gateway_charge_id=self.gateway_charge_id,
            error=self.last_error,
            processed_at=self.updated_at,
        )


@dataclass(frozen=True, slots=True)
class Claimed:
    """This worker holds the payment's lease for ``lease_seconds`` (no other delivery charges
    it meanwhile) and may call the gateway; ``attempts`` counts the attempts already made."""

    attempts: int


@dataclass(frozen=True, slots=True)
class AlreadyFinal:
    snapshot: PaymentSnapshot


@dataclass(frozen=True, slots=True)
class HeldElsewhere:
    """Another delivery of the same payment is being charged right now."""

    seconds_left: float


@dataclass(frozen=True, slots=True)
class FingerprintConflict:
    """Same payment_id, different amount/currency/merchant: refused, nothing charged."""

    error: ErrorInfo


ClaimResult = Claimed | AlreadyFinal | HeldElsewhere | FingerprintConflict


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    attempt: int
    started_at: datetime
    finished_at: datetime
    outcome: str
    http_status: int | None
    error: ErrorInfo | None
    replay_of: str | None


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """The outcome of one gateway attempt, as the store commits it: the attempt's history
    row plus the payment's new status and what goes with it (charge id, last error, park
    reason). One value travels through every store layer, so a new field is added here once."""

    payment_id: str
    owner: str
    attempt: AttemptRecord
    status: PaymentStatus
    charge_id: str | None = None
    error: ErrorInfo | None = None
    park_reason: ParkReason | None = None


class PaymentStore(Protocol):
    async def claim(
        self, request: PaymentRequest, owner: str, lease_seconds: float, reopen: bool
    ) -> ClaimResult:
        """Mark the payment "processing" (committed) before the gateway is called."""
        ...

    async def record(self, outcome: AttemptOutcome) -> PaymentSnapshot:
        """Commit the outcome of one attempt and return the payment as stored.

        A payment that is already final keeps its status (the first final outcome is the
        authority); the attempt row is written either way."""
        ...

    async def mark_dead_lettered(
        self, payment_id: str, reason: ParkReason, error: ErrorInfo
    ) -> PaymentSnapshot | None:
        """Record that the payment was parked without a gateway attempt (poison, conflict)."""
        ...

    async def release(self, payment_id: str, owner: str) -> None:
        """Drop ``owner``'s lease after a crash so the redelivery is not held off."""
        ...

    async def get(self, payment_id: str) -> PaymentSnapshot | None: ...


@dataclass(frozen=True, slots=True)
class ParkNotice:
    """What travels with a parked message as small headers."""

    reason: ParkReason
    error: ErrorInfo
    attempts: int
    payment_id: str | None = None
    merchant_id: str | None = None
    http_status: int | None = None
    exception_type: str | None = None
    park_id: str | None = None
    """Names this parking; the same parking published twice (after a crash) keeps its id,
    so the DLQ ingest stores it once. ``None`` lets the publisher pick a random one."""


def park_id_for(payment_id: str, attempts: int, reason: str) -> str:
    """Deterministic id of "payment X was parked after N attempts for reason R"."""
    return f"{payment_id}:{attempts}:{reason}"


def park_id_for_body(body: bytes, reason: str) -> str:
    """Deterministic id of parking a message that has no trustworthy payment_id."""
    return f"{reason}:{hashlib.sha256(body).hexdigest()[:32]}"


class Publisher(Protocol):
    async def schedule_retry(
        self,
        envelope: Envelope,
        delay: float,
        attempt: int,
        deferred: bool = False,
        in_doubt: bool = False,
    ) -> None:
        """Publish a copy to the retry queue for ``delay`` (confirmed, mandatory); ``in_doubt``
        marks the copy: an attempt of this payment may have been charged."""
        ...

    async def park(self, envelope: Envelope, notice: ParkNotice) -> None:
        """Publish a copy to the DLQ (confirmed, mandatory)."""
        ...

    async def publish_event(
        self,
        event: PaymentResult | RetryScheduled,
        routing_key: str,
        traceparent: str | None = None,
    ) -> None:
        """Publish an outcome event; nobody has to be listening."""
        ...

    async def reply(self, envelope: Envelope, result: PaymentResult) -> None:
        """Send ``result`` to ``reply_to`` with the ``correlation_id``, if the message asked."""
        ...


class Clock(Protocol):
    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...


# The ports' errors live in processor.errors; adapters import them from here as well.
__all__ = [
    "AlreadyFinal",
    "AttemptRecord",
    "ChargeLookup",
    "ClaimResult",
    "Claimed",
    "Clock",
    "FingerprintConflict",
    "Gateway",
    "HeldElsewhere",
    "ParkNotice",
    "PaymentSnapshot",
    "PaymentStore",
    "PublishFailed",
    "Publisher",
    "StoreUnavailable",
    "park_id_for",
    "park_id_for_body",
]
