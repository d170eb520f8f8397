"""Hand-written fakes of the use cases' ports (cosmicpython style): tests assert on their state.

Every fake appends to one shared ``Journal`` so a test can check the global order of effects
(the outcome is committed to the store before anything is published).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from processor.envelope import Envelope
from processor.ports import (
    AlreadyFinal,
    AttemptOutcome,
    AttemptRecord,
    Claimed,
    ClaimResult,
    FingerprintConflict,
    HeldElsewhere,
    ParkNotice,
    PaymentSnapshot,
)
from retry.policy import GatewayAnswer, LookupAnswer, LookupNoCharge
from schemas.outcome import ErrorInfo, ParkReason, PaymentResult, PaymentStatus, RetryScheduled
from schemas.payment import PaymentRequest

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


@dataclass
class Journal:
    """The global sequence of port calls, e.g. ``["store.claim", "gateway.charge", ...]``."""

    entries: list[str] = field(default_factory=list)

    def add(self, entry: str) -> None:
        self.entries.append(entry)

    def index(self, entry: str) -> int:
        return self.entries.index(entry)


@dataclass
class FixedClock:
    """A clock that only moves when a test says so."""

    current: datetime = T0
    mono: float = 1000.0

    def now(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)
        self.mono += seconds


class FakeGateway:
    """Answers from a script, one per call; records every request it was asked to charge."""

    def __init__(
        self,
        answers: Iterable[GatewayAnswer] = (),
        journal: Journal | None = None,
        during_charge: Callable[[PaymentRequest], None] | None = None,
    ) -> None:
        self.answers = list(answers)
        self.calls: list[PaymentRequest] = []
        self.journal = journal or Journal()
        self.during_charge = during_charge
        self.traceparents: list[str | None] = []
        self.lookup_answers: list[LookupAnswer] = []
        """Scripted lookup answers, one per lookup; none left: "no charge"."""
        self.lookups: list[str] = []

    async def charge(
        self, request: PaymentRequest, traceparent: str | None = None
    ) -> GatewayAnswer:
        self.journal.add("gateway.charge")
        self.traceparents.append(traceparent)
        self.calls.append(request)
        if self.during_charge is not None:
            self.during_charge(request)
        if not self.answers:
            raise AssertionError("the gateway was called more often than the test scripted")
        return self.answers.pop(0)

    async def lookup(self, payment_id: str) -> LookupAnswer:
        self.lookups.append(payment_id)
        return self.lookup_answers.pop(0) if self.lookup_answers else LookupNoCharge()


@dataclass
class Row:
    payment_id: str
    status: PaymentStatus
    attempts: int
    fingerprint: str
    merchant_id: str
    lease_owner: str | None
    lease_until: datetime | None
    updated_at: datetime
    gateway_charge_id: str | None = None
    last_error: ErrorInfo | None = None
    dead_letter_reason: str | None = None

    def snapshot(self) -> PaymentSnapshot:
        return PaymentSnapshot(
            payment_id=self.payment_id,
            status=self.status,
            attempts=self.attempts,
            gateway_charge_id=self.gateway_charge_id,
            last_error=self.last_error,
            dead_letter_reason=self.dead_letter_reason,
            updated_at=self.updated_at,
        )


class FakeStore:
    """In-memory ``PaymentStore`` with the SQL store's rules: lease, final rows, fingerprint."""

    def __init__(self, clock: FixedClock, journal: Journal | None = None) -> None:
        self.clock = clock
        self.journal = journal or Journal()
        self.rows: dict[str, Row] = {}
        self.attempts: list[tuple[str, AttemptRecord]] = []

    async def claim(
        self, request: PaymentRequest, owner: str, lease_seconds: float, reopen: bool
    ) -> ClaimResult:
        self.journal.add("store.claim")
        now = self.clock.now()
        until = now + timedelta(seconds=lease_seconds)
        fingerprint = request.fingerprint()
        row = self.rows.get(request.key)
        if row is None:
            self.rows[request.key] = Row(
                payment_id=request.key,
                status=PaymentStatus.PROCESSING,
                attempts=1,
                fingerprint=fingerprint,
                merchant_id=request.merchant_id,
                lease_owner=owner,
                lease_until=until,
                updated_at=now,
            )
            return Claimed(attempts=1)
        open_status = not row.status.is_final or (
            reopen and row.status is PaymentStatus.DEAD_LETTERED
        )
        lease_free = row.lease_until is None or row.lease_until < now or row.lease_owner == owner
        same_payment = row.fingerprint == fingerprint or reopen
        if open_status and lease_free and same_payment:
            row.status = PaymentStatus.PROCESSING
            row.attempts += 1
            row.lease_owner, row.lease_until = owner, until
            row.fingerprint, row.merchant_id = fingerprint, request.merchant_id
            row.dead_letter_reason = None
            row.updated_at = now
            return Claimed(attempts=row.attempts)
        if not same_payment:
            return FingerprintConflict(
                ErrorInfo(code="idempotency_conflict", message="payment_id reused")
            )
        if not open_status:
            return AlreadyFinal(row.snapshot())
        assert row.lease_until is not None
        return HeldElsewhere(max((row.lease_until - now).total_seconds(), 0.0))

    async def record(self, outcome: AttemptOutcome) -> PaymentSnapshot:
        self.journal.add(f"store.record:{outcome.status.value}")
        self.attempts.append((outcome.payment_id, outcome.attempt))
        row = self.rows[outcome.payment_id]
        if not row.status.is_final:  # a final row is the authority
            row.status = outcome.status
            row.updated_at = self.clock.now()
            row.lease_owner = row.lease_until = None
            row.last_error = outcome.error
            row.dead_letter_reason = outcome.park_reason.value if outcome.park_reason else None
            if outcome.charge_id is not None:
                row.gateway_charge_id = outcome.charge_id
        return row.snapshot()

    async def mark_dead_lettered(
        self, payment_id: str, reason: ParkReason, error: ErrorInfo
    ) -> PaymentSnapshot | None:
        self.journal.add("store.mark_dead_lettered")
        row = self.rows.get(payment_id)
        if row is None:
            return None
        if not row.status.is_final:
            row.status = PaymentStatus.DEAD_LETTERED
            row.dead_letter_reason = reason.value
            row.last_error = error
            row.lease_owner = row.lease_until = None
            row.updated_at = self.clock.now()
        return row.snapshot()

    async def release(self, payment_id: str, owner: str) -> None:
        self.journal.add("store.release")
        row = self.rows.get(payment_id)
        if row is not None and row.lease_owner == owner:
            row.lease_owner = row.lease_until = None

    async def get(self, payment_id: str) -> PaymentSnapshot | None:
        row = self.rows.get(payment_id)
        return row.snapshot() if row is not None else None

    def put_final(
        self,
        request: PaymentRequest,
        status: PaymentStatus,
        *,
        charge_id: str | None = None,
        attempts: int = 1,
    ) -> None:
        """Seed a row as if an earlier delivery had finished the payment."""
        self.rows[request.key] = Row(
            payment_id=request.key,
            status=status,
            attempts=attempts,
            fingerprint=request.fingerprint(),
            merchant_id=request.merchant_id,
            lease_owner=None,
            lease_until=None,
            updated_at=self.clock.now(),
            gateway_charge_id=charge_id,
        )


@dataclass(frozen=True)
class ScheduledRetry:
    envelope: Envelope
    delay: float
    attempt: int
    deferred: bool
    in_doubt: bool = False


@dataclass(frozen=True)
class Reply:
    reply_to: str | None
    correlation_id: str | None
    result: PaymentResult


@dataclass
class FakePublisher:
    """Records what would have gone to the broker, in order."""

    journal: Journal = field(default_factory=Journal)
    retries: list[ScheduledRetry] = field(default_factory=list)
    parks: list[tuple[Envelope, ParkNotice]] = field(default_factory=list)
    events: list[tuple[str, PaymentResult | RetryScheduled]] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)

    async def schedule_retry(
        self,
        envelope: Envelope,
        delay: float,
        attempt: int,
        deferred: bool = False,
        in_doubt: bool = False,
    ) -> None:
        self.journal.add("publish.retry")
        self.retries.append(ScheduledRetry(envelope, delay, attempt, deferred, in_doubt))

    async def park(self, envelope: Envelope, notice: ParkNotice) -> None:
        self.journal.add("publish.park")
        self.parks.append((envelope, notice))

    async def publish_event(
        self,
        event: PaymentResult | RetryScheduled,
        routing_key: str,
        traceparent: str | None = None,
    ) -> None:
        self.journal.add(f"publish.event:{routing_key}")
        self.events.append((routing_key, event))

    async def reply(self, envelope: Envelope, result: PaymentResult) -> None:
        self.journal.add("publish.reply")
        if envelope.reply_to:  # like the real publisher: reply only when asked
            self.replies.append(Reply(envelope.reply_to, envelope.correlation_id, result))

    @property
    def routing_keys(self) -> list[str]:
        return [key for key, _ in self.events]

    @property
    def nothing_published(self) -> bool:
        return not (self.retries or self.parks or self.events or self.replies)
