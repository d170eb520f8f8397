"""The retry policy as pure functions: classify a gateway answer, pick a delay, retry or park.

Everything the worker decides about a failed charge is decided here, in one place, in the
order Dramatiq's ``Retries`` middleware uses: is it retryable at all? -> are attempts left?
-> which delay? -> otherwise dead-letter. Nothing here does I/O or imports a client library.

    GatewayAnswer
     +-- Charged      2xx with status "succeeded"          -> Succeed
     +-- Declined     402, a final business answer         -> Decline (never retried or parked)
     +-- Rejected     400/404/409/422, the request is wrong -> Park(gateway_rejected)
     +-- Transient    timeout, connection error, 429, 5xx,  -> Retry(delay) while attempts last,
                      401/403 (our credentials, not the       then Park(retries_exhausted), or
                      message's fault)                        LookUp when the last one is in doubt

An answer is *in doubt* when the request may have reached the gateway and its answer was lost
(``in_doubt``): the gateway may have charged. On the last attempt such an answer is not parked
blind; the worker asks the gateway (``LookUp``) and ``settle`` turns the lookup into
Succeed (it had charged), Park(retries_exhausted) (it had not) or Hold (it cannot say now:
status ``unknown``, DLQ reason ``outcome_unknown``, settled later by the reconciler).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from enum import StrEnum

from retry.errors import PolicyError
from schemas.outcome import ErrorInfo, ParkReason


class TransientKind(StrEnum):
    """What went wrong, as a fact the adapter observed; ``in_doubt`` judges what it means.

    Adapters report *what happened on the wire*; whether the gateway may have charged is
    decided by the policy (``in_doubt``), never by an adapter.
    """

    CONNECT_FAILED = "connect_failed"
    """The connection could not be opened (refused, DNS, connect timeout): nothing was sent."""
    TIMEOUT = "timeout"
    """The request was sent and no answer came in time (read timeout)."""
    CONNECTION = "connection_error"
    """The connection dropped after the request may have been written."""
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    GATEWAY_AUTH = "gateway_auth"
    UNEXPECTED_ANSWER = "unexpected_answer"
    PENDING_AT_GATEWAY = "pending_at_gateway"
    """The gateway accepted the charge but has not settled it yet (Stripe ``processing``)."""


@dataclass(frozen=True, slots=True)
class Charged:
    charge_id: str


@dataclass(frozen=True, slots=True)
class Declined:
    error: ErrorInfo


@dataclass(frozen=True, slots=True)
class Rejected:
    http_status: int
    error: ErrorInfo
    park_reason: ParkReason = ParkReason.GATEWAY_REJECTED
    """``INVALID_MESSAGE`` when the message itself is at fault (e.g. the gateway holds its
    idempotency key for other parameters), not the gateway's judgement of the request."""


@dataclass(frozen=True, slots=True)
class Transient:
    kind: TransientKind
    error: ErrorInfo
    http_status: int | None = None
    retry_after: float | None = None


GatewayAnswer = Charged | Declined | Rejected | Transient


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (negative as 0), or ``None`` when absent or not a
    number of seconds (an HTTP date is not honoured: the ladder's own delay applies)."""
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


def http_status(answer: GatewayAnswer) -> int | None:
    """The HTTP status the answer came with; ``None`` when none came (timeout, connection)."""
    match answer:
        case Charged():
            return 200
        case Declined():
            return 402
        case Rejected(http_status=status) | Transient(http_status=status):
            return status
    raise AssertionError(answer)  # pragma: no cover


@dataclass(frozen=True, slots=True)
class LookupCharged:
    """The gateway holds a successful charge made with the payment's idempotency key."""

    charge_id: str


@dataclass(frozen=True, slots=True)
class LookupNoCharge:
    """The gateway answered: no successful charge was made with that key."""


@dataclass(frozen=True, slots=True)
class LookupUnavailable:
    """The gateway could not say now (5xx, 429, timeout, connection error)."""

    error: ErrorInfo
    rate_limited: bool = False
    """The gateway refused the lookup with a 429: the senders must slow down, as for a charge."""
    retry_after: float | None = None
    """The 429's ``Retry-After`` in seconds, when it gave one."""


LookupAnswer = LookupCharged | LookupNoCharge | LookupUnavailable
"""What ``GET /v1/charges?idempotency_key=<payment_id>`` (or a provider's equivalent) told."""


class StatusClass(StrEnum):
    SUCCESS = "success"
    DECLINED = "declined"
    REJECTED = "rejected"
    TRANSIENT = "transient"


_REJECTED_STATUSES = frozenset({400, 404, 409, 422})


def classify_status(status: int) -> StatusClass:
    """Map an HTTP status of ``POST /v1/charges`` to what it means for the payment."""
    if 200 <= status < 300:
        return StatusClass.SUCCESS
    if status == 402:
        return StatusClass.DECLINED
    if status in _REJECTED_STATUSES:
        return StatusClass.REJECTED
    # 401/403 mean *our* credentials or the gateway are broken: not the message's fault.
    # 429, 5xx and anything unforeseen are worth another try later.
    return StatusClass.TRANSIENT


@dataclass(frozen=True, slots=True)
class Succeed:
    charge_id: str


@dataclass(frozen=True, slots=True)
class Decline:
    error: ErrorInfo


@dataclass(frozen=True, slots=True)
class Retry:
    delay: float
    attempt: int
    """The number the next gateway attempt will have: the failed one's plus one, or the same
    number when ``spared``."""
    error: ErrorInfo
    spared: bool = False
    """True when the attempt does not count against the budget (the gateway is known down)."""
    in_doubt: bool = False
    """This attempt or an earlier one may have charged: the payment's last attempt, however
    it fails, ends in a lookup (the retry copy carries the mark)."""

    @property
    def attempts_counted(self) -> int:
        """Attempts spent from the budget so far (what the retry copy carries)."""
        return self.attempt - 1


@dataclass(frozen=True, slots=True)
class Park:
    reason: ParkReason
    error: ErrorInfo


@dataclass(frozen=True, slots=True)
class LookUp:
    """The last attempt ended in doubt: ask the gateway whether it charged before deciding."""

    error: ErrorInfo


Decision = Succeed | Decline | Retry | Park | LookUp


@dataclass(frozen=True, slots=True)
class Hold:
    """Nobody can say yet whether the gateway charged: status ``unknown``, never failed."""

    error: ErrorInfo


Settlement = Succeed | Park | Hold
"""What a lookup of an in-doubt payment decides."""


_IN_DOUBT_KINDS = frozenset(
    {
        TransientKind.TIMEOUT,
        TransientKind.CONNECTION,
        TransientKind.SERVER_ERROR,
        TransientKind.PENDING_AT_GATEWAY,
        TransientKind.UNEXPECTED_ANSWER,
    }
)
"""Failures after which the gateway may hold a charge: the request was (or may have been)
delivered and no final answer came back. A 5xx is included because a proxy in front of the
gateway answers 502/503/504 for a request the gateway may have processed; a 2xx that is not
a recognisable charge is a gateway answer we cannot read. Not in doubt: ``CONNECT_FAILED``
(nothing was sent), ``RATE_LIMITED`` and ``GATEWAY_AUTH`` (the gateway refused the request
before processing it)."""


def in_doubt(answer: GatewayAnswer) -> bool:
    """True when the gateway may have charged although ``answer`` is not a charge."""
    return isinstance(answer, Transient) and answer.kind in _IN_DOUBT_KINDS


def settle(lookup: LookupAnswer, error: ErrorInfo) -> Settlement:
    """Decide an in-doubt payment from a lookup; ``error`` is the failure that raised the doubt.

    A charge found is a success, whatever the lost answer said: a charged payment is never
    reported as failed. No charge found means the payment is known not to be charged and may
    be parked (and replayed) safely.
    """
    match lookup:
        case LookupCharged(charge_id=charge_id):
            return Succeed(charge_id)
        case LookupNoCharge():
            return Park(ParkReason.RETRIES_EXHAUSTED, error)
        case LookupUnavailable():
            return Hold(error)
    raise AssertionError(lookup)  # pragma: no cover


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """A ladder of delays (one TTL queue each) and the total gateway attempt budget."""

    delays: tuple[float, ...]
    max_attempts: int

    def __post_init__(self) -> None:
        if not self.delays:
            raise PolicyError("at least one retry delay is needed")
        if any(not math.isfinite(d) for d in self.delays):
            raise PolicyError("retry delays must be finite numbers of seconds")
        if any(d <= 0 for d in self.delays):
            raise PolicyError("retry delays must be positive")
        if list(self.delays) != sorted(set(self.delays)):
            raise PolicyError("retry delays must be strictly increasing")
        if self.max_attempts < 1:
            raise PolicyError("max attempts must be at least 1")

    def delay_for(self, attempt: int, retry_after: float | None = None) -> float:
        """Delay before attempt ``attempt + 1``, given that ``attempt`` attempts failed.

        Attempt 1 failed -> the first delay, attempt 2 -> the second, and the last delay
        repeats when attempts outnumber delays. A ``Retry-After`` moves the choice up to the
        shortest queue that waits at least that long (or the longest queue there is).
        """
        base = self.delays[min(max(attempt, 1), len(self.delays)) - 1]
        if retry_after is None or retry_after <= base:
            return base
        index = bisect.bisect_left(self.delays, retry_after)
        return self.delays[min(index, len(self.delays) - 1)]

    def decide(
        self,
        answer: GatewayAnswer,
        attempt: int,
        *,
        gateway_down: bool = False,
        doubted_before: bool = False,
    ) -> Decision:
        """What to do after gateway attempt number ``attempt`` (1-based) gave ``answer``.

        ``gateway_down`` (the worker's circuit breaker is open or probing) means a transient
        failure says nothing about this payment: it is retried without spending its budget,
        so an outage longer than the whole ladder cannot park the backlog.

        ``doubted_before``: an earlier attempt ended in doubt. Its charge may exist although
        this attempt failed plainly (a 429 or a refused connection is answered before the
        gateway looks at the idempotency key), so exhausting the budget asks the gateway first.
        """
        match answer:
            case Charged(charge_id=charge_id):
                return Succeed(charge_id)
            case Declined(error=error):
                return Decline(error)
            case Rejected(error=error, park_reason=reason):
                return Park(reason, error)
            case Transient(error=error, retry_after=retry_after):
                doubt = doubted_before or in_doubt(answer)
                if gateway_down:
                    return Retry(
                        self.delay_for(1, retry_after), attempt, error, spared=True, in_doubt=doubt
                    )
                if attempt >= self.max_attempts:
                    if doubt:
                        return LookUp(error)
                    return Park(ParkReason.RETRIES_EXHAUSTED, error)
                return Retry(
                    self.delay_for(attempt, retry_after), attempt + 1, error, in_doubt=doubt
                )


def parse_delays(text: str) -> tuple[float, ...]:
    """Parse ``"1,5,30"`` into ``(1.0, 5.0, 30.0)``; raises ``PolicyError`` with the reason."""
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise PolicyError(f"not a comma-separated list of seconds: {text!r}") from exc
    RetryPolicy(values, 1)  # validates
    return values
