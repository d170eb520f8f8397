"""Outcome truth: which failures leave a charge in doubt, and what the last attempt then does.

A charged payment is never announced as failed: an in-doubt last attempt is looked up, and a
lookup that cannot answer leaves the payment ``unknown`` (parked ``outcome_unknown``).
"""

from __future__ import annotations

import pytest

from processor.handled import Outcome
from processor.use_cases import Deps, Handled, process_payment
from retry.policy import (
    Charged,
    Declined,
    GatewayAnswer,
    Hold,
    LookUp,
    LookupCharged,
    LookupNoCharge,
    LookupUnavailable,
    Park,
    Rejected,
    Retry,
    RetryPolicy,
    Succeed,
    Transient,
    TransientKind,
    in_doubt,
    settle,
)
from schemas.outcome import ErrorInfo, ParkReason, PaymentStatus
from tests.unit.test_use_cases import (
    OWNER,
    POLICY,
    World,
    envelope_for,
    make_request,
    run,
    world,
)

__all__ = ["world"]  # the fixture, shared with the use-case tests

LOST = ErrorInfo(code="gateway_timeout", message="ReadTimeout: no answer")
DOWN = ErrorInfo(code="lookup_unavailable", message="503")

IN_DOUBT = {
    TransientKind.CONNECT_FAILED: False,
    TransientKind.TIMEOUT: True,
    TransientKind.CONNECTION: True,
    TransientKind.RATE_LIMITED: False,
    TransientKind.SERVER_ERROR: True,
    TransientKind.GATEWAY_AUTH: False,
    TransientKind.UNEXPECTED_ANSWER: True,
    TransientKind.PENDING_AT_GATEWAY: True,
}


def test_every_transient_kind_has_a_stated_in_doubt_classification() -> None:
    """The table below covers every kind: a new kind must be classified on purpose."""
    assert set(IN_DOUBT) == set(TransientKind)


@pytest.mark.parametrize(("kind", "expected"), sorted(IN_DOUBT.items()))
def test_in_doubt_classification_of_each_transient_kind(
    kind: TransientKind, expected: bool
) -> None:
    """Sent-and-lost (timeout, dropped, 5xx, pending) is in doubt; not-sent/refused is not."""
    assert in_doubt(Transient(kind, LOST)) is expected


@pytest.mark.parametrize(
    "answer",
    [Charged("ch_1"), Declined(LOST), Rejected(422, LOST)],
)
def test_final_gateway_answers_are_never_in_doubt(answer: GatewayAnswer) -> None:
    """An answer that arrived says what happened: nothing to look up."""
    assert not in_doubt(answer)


@pytest.mark.parametrize(("kind", "doubtful"), sorted(IN_DOUBT.items()))
def test_last_attempt_looks_up_only_when_in_doubt(kind: TransientKind, doubtful: bool) -> None:
    """At the attempt budget, an in-doubt failure asks for a lookup; others park blind."""
    policy = RetryPolicy((1.0, 5.0), max_attempts=3)
    decision = policy.decide(Transient(kind, LOST), 3)
    if doubtful:
        assert decision == LookUp(LOST)
    else:
        assert decision == Park(ParkReason.RETRIES_EXHAUSTED, LOST)


def test_earlier_in_doubt_attempts_are_simply_retried() -> None:
    """Before the last attempt a retry with the same key settles the doubt by itself (the copy
    is marked in doubt, in case the later attempts fail before the gateway reads the key)."""
    policy = RetryPolicy((1.0, 5.0), max_attempts=3)
    assert policy.decide(Transient(TransientKind.TIMEOUT, LOST), 1) == Retry(
        1.0, 2, LOST, in_doubt=True
    )


def test_settle_maps_each_lookup_answer() -> None:
    """Charge found -> succeed, none -> retries_exhausted, cannot say -> hold (unknown)."""
    assert settle(LookupCharged("ch_9"), LOST) == Succeed("ch_9")
    assert settle(LookupNoCharge(), LOST) == Park(ParkReason.RETRIES_EXHAUSTED, LOST)
    assert settle(LookupUnavailable(DOWN), LOST) == Hold(LOST)


# ---- the use case ---------------------------------------------------------------------------


def lost_answer() -> Transient:
    return Transient(TransientKind.TIMEOUT, LOST)


async def last_attempt(world: World, answer: GatewayAnswer) -> tuple[str, Handled]:
    request = make_request()
    world.script(answer)
    handled = await run(world, request, attempt=POLICY.max_attempts - 1)
    return request.key, handled


async def test_lost_answer_with_a_charge_found_succeeds_reconciled(world: World) -> None:
    """The gateway charged: succeeded with its charge id, ``reconciled``, never dead_lettered."""
    world.gateway.lookup_answers.append(LookupCharged("ch_found"))
    payment_id, handled = await last_attempt(world, lost_answer())

    assert handled.outcome is Outcome.SUCCEEDED
    row = world.store.rows[payment_id]
    assert (row.status, row.gateway_charge_id) == (PaymentStatus.SUCCEEDED, "ch_found")
    assert world.publisher.routing_keys == ["payment.succeeded"]
    [(_, event)] = world.publisher.events
    assert event.model_dump(mode="json")["reconciled"] is True
    assert world.publisher.replies[0].result.status is PaymentStatus.SUCCEEDED
    assert not world.publisher.parks
    assert world.gateway.lookups == [payment_id]


async def test_lost_answer_with_no_charge_parks_retries_exhausted(world: World) -> None:
    """The gateway did not charge: parked as retries_exhausted, replayable."""
    world.gateway.lookup_answers.append(LookupNoCharge())
    payment_id, handled = await last_attempt(world, lost_answer())

    assert (handled.outcome, handled.park_reason) == (Outcome.PARKED, ParkReason.RETRIES_EXHAUSTED)
    assert world.store.rows[payment_id].status is PaymentStatus.DEAD_LETTERED
    [(_, notice)] = world.publisher.parks
    assert notice.reason is ParkReason.RETRIES_EXHAUSTED
    assert world.publisher.routing_keys == ["payment.dead_lettered"]


async def test_lost_answer_that_nobody_can_settle_is_unknown_never_failed(world: World) -> None:
    """Lookup unavailable: status unknown, event payment.unknown, DLQ reason outcome_unknown."""
    world.gateway.lookup_answers.append(LookupUnavailable(DOWN))
    payment_id, handled = await last_attempt(world, lost_answer())

    assert (handled.outcome, handled.park_reason) == (Outcome.PARKED, ParkReason.OUTCOME_UNKNOWN)
    row = world.store.rows[payment_id]
    assert (row.status, row.dead_letter_reason) == (PaymentStatus.UNKNOWN, "outcome_unknown")
    assert not row.status.is_final
    [(_, notice)] = world.publisher.parks
    assert notice.reason is ParkReason.OUTCOME_UNKNOWN
    assert notice.payment_id == payment_id
    assert world.publisher.routing_keys == ["payment.unknown"]
    assert world.publisher.replies[0].result.status is PaymentStatus.UNKNOWN


async def test_no_lookup_port_means_unknown_not_failed(world: World) -> None:
    """Without a way to ask the gateway, an in-doubt payment is unknown, not dead_lettered."""
    request = make_request()
    world.script(lost_answer())
    deps = world.deps
    blind = Deps(
        deps.gateway, deps.store, deps.publisher, deps.policy, deps.clock, deps.lease_seconds
    )
    handled = await process_payment(
        request, envelope_for(request, attempt=POLICY.max_attempts - 1), OWNER, blind
    )
    assert (handled.outcome, handled.park_reason) == (Outcome.PARKED, ParkReason.OUTCOME_UNKNOWN)
    assert "payment.dead_lettered" not in world.publisher.routing_keys


async def test_a_lookup_that_raises_counts_as_cannot_say(world: World) -> None:
    """A broken lookup adapter leaves the payment unknown instead of crashing or failing it."""

    async def broken(payment_id: str) -> LookupCharged:
        raise RuntimeError("bug")

    world.gateway.lookup = broken  # type: ignore[method-assign]
    payment_id, handled = await last_attempt(world, lost_answer())
    assert (handled.outcome, handled.park_reason) == (Outcome.PARKED, ParkReason.OUTCOME_UNKNOWN)
    assert world.store.rows[payment_id].status is PaymentStatus.UNKNOWN


async def test_a_connect_failure_on_the_last_attempt_is_parked_without_lookup(
    world: World,
) -> None:
    """Nothing was sent, nothing can have been charged: no lookup, retries_exhausted."""
    _, handled = await last_attempt(world, Transient(TransientKind.CONNECT_FAILED, LOST))
    assert (handled.outcome, handled.park_reason) == (Outcome.PARKED, ParkReason.RETRIES_EXHAUSTED)
    assert world.gateway.lookups == []


async def test_an_unknown_payment_redelivered_is_charged_again_with_its_key(world: World) -> None:
    """``unknown`` is not final: a redelivery may charge (same key) and settle it."""
    world.gateway.lookup_answers.append(LookupUnavailable(DOWN))
    request = make_request()
    world.script(lost_answer(), Charged("ch_late"))
    await run(world, request, attempt=POLICY.max_attempts - 1)
    assert world.store.rows[request.key].status is PaymentStatus.UNKNOWN

    handled = await run(world, request, attempt=POLICY.max_attempts - 1)
    assert handled.outcome is Outcome.SUCCEEDED
    assert world.store.rows[request.key].gateway_charge_id == "ch_late"


# ---- doubt carried across attempts ----------------------------------------------------------

RATE_LIMITED = Transient(
    TransientKind.RATE_LIMITED, ErrorInfo(code="rate_limit", message="429"), http_status=429
)


def test_a_plain_failure_after_an_in_doubt_attempt_still_ends_in_a_lookup() -> None:
    """An earlier lost answer may hide a charge: a 429 on the last attempt asks the gateway."""
    last = POLICY.max_attempts
    assert POLICY.decide(RATE_LIMITED, last) == Park(
        ParkReason.RETRIES_EXHAUSTED, RATE_LIMITED.error
    )
    assert POLICY.decide(RATE_LIMITED, last, doubted_before=True) == LookUp(RATE_LIMITED.error)


def test_the_retry_of_an_in_doubt_attempt_carries_the_doubt() -> None:
    """The mark is set by the doubtful attempt and kept by later plain failures."""
    first = POLICY.decide(lost_answer(), 1)
    assert isinstance(first, Retry)
    assert first.in_doubt
    later = POLICY.decide(RATE_LIMITED, 2, doubted_before=True)
    assert isinstance(later, Retry)
    assert later.in_doubt
    plain = POLICY.decide(RATE_LIMITED, 2)
    assert isinstance(plain, Retry)
    assert not plain.in_doubt


async def test_a_charge_hidden_by_an_earlier_lost_answer_is_found_on_the_last_attempt(
    world: World,
) -> None:
    """Attempt 1 charged and lost its answer; the last attempt is refused with a 429 before the
    gateway reads the key: the lookup finds the charge and the payment succeeds."""
    request = make_request()
    world.script(lost_answer())
    await run(world, request, attempt=0)
    [retry] = world.publisher.retries
    assert retry.in_doubt

    world.script(RATE_LIMITED)
    world.gateway.lookup_answers.append(LookupCharged("ch_early"))
    doubtful = envelope_for(request, attempt=POLICY.max_attempts - 1)
    marked = type(doubtful)(
        body=doubtful.body,
        headers={**doubtful.headers, "x-payproc-in-doubt": 1},
        content_type=doubtful.content_type,
        reply_to=doubtful.reply_to,
        correlation_id=doubtful.correlation_id,
        message_id=doubtful.message_id,
    )
    handled = await process_payment(request, marked, OWNER, world.deps)

    assert handled.outcome is Outcome.SUCCEEDED
    assert world.store.rows[request.key].gateway_charge_id == "ch_early"
    assert "payment.dead_lettered" not in world.publisher.routing_keys
