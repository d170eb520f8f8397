"""Use cases: what happens to one payment request, as plain code over ports.

The order of effects is the heart of "never lose, never charge twice":

1. claim the payment (committed as "processing") before the gateway is called;
2. call the gateway with ``payment_id`` as the Idempotency-Key;
3. commit the outcome;
4. publish what the outcome causes (retry copy, DLQ copy, event, reply) with confirms;
5. only then does the consumer ack.

A crash anywhere leaves the message unacked; the redelivery calls the gateway again with
the same key and gets the first answer back.

When the last attempt's answer is lost after the request may have reached the gateway (the
policy's ``in_doubt``), the gateway is asked whether it charged before anything is decided:
a charge found is a success (``reconciled``), none found parks the payment as
``retries_exhausted``, and no answer leaves it ``unknown`` (parked as ``outcome_unknown`` for
the reconciler). A charged payment is never announced as failed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from processor.decode import Invalid
from processor.envelope import Envelope
from processor.handled import Handled, Outcome
from processor.ports import (
    AlreadyFinal,
    AttemptOutcome,
    AttemptRecord,
    ChargeLookup,
    Claimed,
    Clock,
    FingerprintConflict,
    Gateway,
    HeldElsewhere,
    ParkNotice,
    PaymentSnapshot,
    PaymentStore,
    Publisher,
    park_id_for,
    park_id_for_body,
)
from processor.tracing import child_of
from retry.policy import (
    Charged,
    Decline,
    Declined,
    GatewayAnswer,
    Hold,
    LookUp,
    LookupAnswer,
    LookupUnavailable,
    Park,
    Rejected,
    Retry,
    RetryPolicy,
    Succeed,
    Transient,
    http_status,
    settle,
)
from schemas.outcome import ErrorInfo, ParkReason, PaymentResult, PaymentStatus, RetryScheduled
from schemas.payment import PaymentRequest

log = logging.getLogger("payproc.worker")


@dataclass(frozen=True, slots=True)
class Deps:
    gateway: Gateway
    store: PaymentStore
    publisher: Publisher
    policy: RetryPolicy
    clock: Clock
    lease_seconds: float
    gateway_down: Callable[[PaymentRequest], bool] = field(default=lambda _request: False)
    """True while the worker's circuit breaker holds the gateway for down for this payment
    (open or probing, within its hold, the payment's merchant not isolated)."""
    lookup: ChargeLookup | None = None
    """Asks the gateway whether an in-doubt charge happened; ``None``: it cannot be asked,
    so an in-doubt payment stays ``unknown``."""


async def process_payment(
    request: PaymentRequest, envelope: Envelope, owner: str, deps: Deps
) -> Handled:
    """Charge one valid payment request and publish what follows from the answer."""
    payment_id = request.key
    claim = await deps.store.claim(
        request, owner, deps.lease_seconds, reopen=envelope.replay_of is not None
    )
    match claim:
        case AlreadyFinal(snapshot=snapshot):
            # Re-announce: the first delivery may have committed the outcome and then lost
            # its connection before the event went out. Events are at-least-once.
            log.info("duplicate of a final payment", extra={"payment_id": payment_id})
            if snapshot.status is PaymentStatus.DEAD_LETTERED:
                # The first delivery may have committed "dead_lettered" and crashed before
                # its DLQ copy was confirmed: park again under the same park id (the DLQ
                # ingest keeps one entry per park id).
                await deps.publisher.park(envelope, _repark_notice(snapshot, request))
            await _announce(deps, envelope, snapshot.result())
            return Handled(Outcome.DUPLICATE)
        case HeldElsewhere(seconds_left=seconds_left):
            delay = deps.policy.delay_for(1, seconds_left)
            await deps.publisher.schedule_retry(envelope, delay, envelope.attempt, deferred=True)
            return Handled(Outcome.DEFERRED, delay=delay)
        case FingerprintConflict(error=error):
            # The stored payment is untouched; the *message* is refused. A synchronous
            # caller must not wait for a reply that would never come.
            await deps.publisher.reply(
                envelope,
                PaymentResult(
                    payment_id=payment_id,
                    status=PaymentStatus.DEAD_LETTERED,
                    attempts=0,
                    error=error,
                    processed_at=deps.clock.now(),
                ),
            )
            return await _park_as_invalid(
                envelope, error, deps, payment_id, request.merchant_id, "idempotency_conflict"
            )
        case Claimed():
            pass

    attempt = envelope.attempt + 1
    started_at = deps.clock.now()
    traceparent = envelope.traceparent
    answer = await deps.gateway.charge(request, child_of(traceparent) if traceparent else None)
    finished_at = deps.clock.now()
    decision = deps.policy.decide(
        answer,
        attempt,
        gateway_down=deps.gateway_down(request),
        doubted_before=envelope.in_doubt,
    )
    record = AttemptRecord(
        attempt=attempt,
        started_at=started_at,
        finished_at=finished_at,
        outcome=_answer_outcome(answer),
        http_status=http_status(answer),
        error=_answer_error(answer),
        replay_of=envelope.replay_of,
    )
    transient = isinstance(answer, Transient)
    reconciled = False
    if isinstance(decision, LookUp):
        settled = settle(await _look_up(deps, payment_id), decision.error)
        reconciled = isinstance(settled, Succeed)
        # Hold: nobody can say whether the gateway charged. The payment becomes "unknown"
        # (not final, never "failed"); its DLQ entry waits for the reconciler.
        if isinstance(settled, Hold):
            decision = Park(ParkReason.OUTCOME_UNKNOWN, settled.error)
        else:
            decision = settled

    match decision:
        case Succeed(charge_id=charge_id):
            snapshot = await deps.store.record(
                AttemptOutcome(
                    payment_id, owner, record, PaymentStatus.SUCCEEDED, charge_id=charge_id
                )
            )
            result = snapshot.result()
            if reconciled and snapshot.status is PaymentStatus.SUCCEEDED:
                result = result.model_copy(update={"reconciled": True})
            await _announce(deps, envelope, result)
            return Handled(Outcome.SUCCEEDED, gateway_called=True, transient=False)
        case Decline(error=error):
            snapshot = await deps.store.record(
                AttemptOutcome(payment_id, owner, record, PaymentStatus.DECLINED, error=error)
            )
            await _announce(deps, envelope, snapshot.result())
            return Handled(Outcome.DECLINED, gateway_called=True, transient=False)
        case Retry(delay=delay, error=error):
            snapshot = await deps.store.record(
                AttemptOutcome(payment_id, owner, record, PaymentStatus.RETRYING, error=error)
            )
            if snapshot.status.is_final:
                # Another delivery of this payment finished first while we were charging.
                await deps.publisher.reply(envelope, snapshot.result())
                return Handled(Outcome.DUPLICATE, gateway_called=True, transient=transient)
            await _together(
                deps.publisher.schedule_retry(
                    envelope, delay, decision.attempts_counted, in_doubt=decision.in_doubt
                ),
                deps.publisher.publish_event(
                    RetryScheduled(
                        payment_id=payment_id,
                        attempts=attempt,
                        delay_seconds=delay,
                        error=error,
                        processed_at=finished_at,
                    ),
                    "payment.retry_scheduled",
                    envelope.traceparent,
                ),
            )
            return Handled(Outcome.RETRY, delay=delay, gateway_called=True, transient=True)
        case Park(reason=reason, error=error):
            status = (
                PaymentStatus.UNKNOWN
                if reason is ParkReason.OUTCOME_UNKNOWN
                else PaymentStatus.DEAD_LETTERED
            )
            snapshot = await deps.store.record(
                AttemptOutcome(payment_id, owner, record, status, error=error, park_reason=reason)
            )
            if snapshot.status is not status:
                await deps.publisher.reply(envelope, snapshot.result())
                return Handled(Outcome.DUPLICATE, gateway_called=True, transient=transient)
            await deps.publisher.park(
                envelope,
                ParkNotice(
                    reason,
                    error,
                    attempt,
                    payment_id=payment_id,
                    merchant_id=request.merchant_id,
                    http_status=record.http_status,
                    park_id=park_id_for(payment_id, snapshot.attempts, reason.value),
                ),
            )
            await _announce(deps, envelope, snapshot.result())
            return Handled(
                Outcome.PARKED, park_reason=reason, gateway_called=True, transient=transient
            )
    raise AssertionError(f"unhandled decision {decision!r}")  # pragma: no cover


async def _look_up(deps: Deps, payment_id: str) -> LookupAnswer:
    """Ask the gateway about an in-doubt charge; any failure to ask means "cannot say"."""
    if deps.lookup is None:
        return LookupUnavailable(ErrorInfo(code="lookup_unavailable", message="no lookup"))
    try:
        return await deps.lookup.lookup(payment_id)
    except Exception as exc:  # the port must not raise; if it does, nothing is known
        log.exception("charge lookup failed", extra={"payment_id": payment_id})
        return LookupUnavailable(ErrorInfo(code="lookup_failed", message=type(exc).__name__))


async def park_invalid(
    envelope: Envelope, error: ErrorInfo, deps: Deps, invalid: Invalid | None = None
) -> Handled:
    """Park a message that is not a valid payment request; the gateway is never called."""
    return await _park_as_invalid(
        envelope,
        error,
        deps,
        invalid.payment_id if invalid else None,
        invalid.merchant_id if invalid else None,
        ParkReason.INVALID_MESSAGE.value,
    )


async def _park_as_invalid(
    envelope: Envelope,
    error: ErrorInfo,
    deps: Deps,
    payment_id: str | None,
    merchant_id: str | None,
    park_key: str,
) -> Handled:
    """Park ``envelope`` as ``invalid_message``; ``park_key`` keeps the park id of a refused
    body distinct per cause (a malformed body, an idempotency conflict)."""
    await deps.publisher.park(
        envelope,
        ParkNotice(
            ParkReason.INVALID_MESSAGE,
            error,
            envelope.attempt,
            payment_id=payment_id,
            merchant_id=merchant_id,
            park_id=park_id_for_body(envelope.body, park_key),
        ),
    )
    return Handled(Outcome.PARKED, park_reason=ParkReason.INVALID_MESSAGE)


async def park_poison(
    request: PaymentRequest | None, envelope: Envelope, exc: BaseException, deps: Deps
) -> Handled:
    """Park a message whose processing crashed on several deliveries."""
    error = ErrorInfo(code="processing_crashed", message=f"{type(exc).__name__}: {exc}"[:500])
    payment_id = request.key if request is not None else None
    snapshot = None
    if request is not None:
        snapshot = await deps.store.mark_dead_lettered(request.key, ParkReason.POISON, error)
        if snapshot is not None and snapshot.status is not PaymentStatus.DEAD_LETTERED:
            await deps.publisher.reply(envelope, snapshot.result())
            return Handled(Outcome.DUPLICATE)
    await deps.publisher.park(
        envelope,
        ParkNotice(
            ParkReason.POISON,
            error,
            envelope.attempt,
            payment_id=payment_id,
            merchant_id=request.merchant_id if request is not None else None,
            exception_type=type(exc).__name__,
            park_id=(
                park_id_for(request.key, snapshot.attempts, ParkReason.POISON.value)
                if request is not None and snapshot is not None
                else park_id_for_body(envelope.body, ParkReason.POISON.value)
            ),
        ),
    )
    if snapshot is not None:
        await _announce(deps, envelope, snapshot.result())
    return Handled(Outcome.PARKED, park_reason=ParkReason.POISON)


def _repark_notice(snapshot: PaymentSnapshot, request: PaymentRequest) -> ParkNotice:
    reason = ParkReason(snapshot.dead_letter_reason or ParkReason.POISON.value)
    error = snapshot.last_error or ErrorInfo(code="dead_lettered", message="parked earlier")
    return ParkNotice(
        reason,
        error,
        snapshot.attempts,
        payment_id=snapshot.payment_id,
        merchant_id=request.merchant_id,
        park_id=park_id_for(snapshot.payment_id, snapshot.attempts, reason.value),
    )


async def _announce(deps: Deps, envelope: Envelope, result: PaymentResult) -> None:
    await _together(
        deps.publisher.publish_event(
            result, f"payment.{result.status.value}", envelope.traceparent
        ),
        deps.publisher.reply(envelope, result),
    )


async def _together(*publishes: Awaitable[None]) -> None:
    """Await independent publishes at once: their broker confirms overlap instead of adding
    up (on a quorum queue each confirm waits for a Raft commit). Every one has finished,
    confirmed or failed, when this returns; the first failure is raised, so the message is
    not acked unless all were confirmed."""
    results = await asyncio.gather(*publishes, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


def _answer_outcome(answer: GatewayAnswer) -> str:
    match answer:
        case Charged():
            return "succeeded"
        case Declined():
            return "declined"
        case Rejected():
            return "rejected"
        case Transient(kind=kind):
            return f"transient:{kind.value}"
    raise AssertionError(answer)  # pragma: no cover


def _answer_error(answer: GatewayAnswer) -> ErrorInfo | None:
    if isinstance(answer, Charged):
        return None
    return answer.error
