"""The payment use cases over hand-written fakes: what is stored, charged and published."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from processor.decode import Invalid
from processor.envelope import Envelope
from processor.handled import Handled, Outcome
from processor.use_cases import Deps, park_invalid, park_poison, process_payment
from retry.policy import (
    Charged,
    Declined,
    GatewayAnswer,
    Rejected,
    RetryPolicy,
    Transient,
    TransientKind,
)
from schemas import headers as h
from schemas.outcome import ErrorInfo, ParkReason, PaymentResult, PaymentStatus, RetryScheduled
from schemas.payment import PaymentRequest
from tests.unit.fakes import FakeGateway, FakePublisher, FakeStore, FixedClock, Journal

OWNER = "worker-a"
LEASE = 20.0
POLICY = RetryPolicy((1.0, 5.0, 30.0), max_attempts=4)
BUSY = ErrorInfo(code="http_503", message="gateway answered 503")
DECLINE = ErrorInfo(code="card_declined", message="Your card was declined.")
BAD = ErrorInfo(code="invalid_request_error", message="bad amount")


@dataclass
class World:
    """One use-case run's collaborators, sharing a clock and a journal of calls."""

    journal: Journal
    clock: FixedClock
    gateway: FakeGateway
    store: FakeStore
    publisher: FakePublisher

    @property
    def deps(self) -> Deps:
        return Deps(
            self.gateway, self.store, self.publisher, POLICY, self.clock, LEASE, lookup=self.gateway
        )

    def script(self, *answers: GatewayAnswer) -> None:
        self.gateway.answers.extend(answers)


@pytest.fixture
def world() -> World:
    journal = Journal()
    clock = FixedClock()
    return World(
        journal=journal,
        clock=clock,
        gateway=FakeGateway(journal=journal),
        store=FakeStore(clock, journal),
        publisher=FakePublisher(journal),
    )


def make_request(**fields: Any) -> PaymentRequest:
    data: dict[str, Any] = {
        "payment_id": str(uuid.uuid4()),
        "amount": 1999,
        "currency": "EUR",
        "merchant_id": "m_123",
        "payment_method": "pm_card_visa",
    }
    data.update(fields)
    return PaymentRequest.model_validate(data)


def envelope_for(
    request: PaymentRequest, attempt: int = 0, replay_of: str | None = None
) -> Envelope:
    headers: dict[str, Any] = {h.ATTEMPT: attempt}
    if replay_of is not None:
        headers[h.REPLAY_OF] = replay_of
    return Envelope(
        body=request.model_dump_json().encode(),
        headers=headers,
        content_type="application/json",
        reply_to="amq.gen-reply",
        correlation_id="corr-1",
        message_id=request.key,
    )


def transient(retry_after: float | None = None) -> Transient:
    return Transient(TransientKind.SERVER_ERROR, BUSY, http_status=503, retry_after=retry_after)


async def run(world: World, request: PaymentRequest, **envelope: Any) -> Handled:
    return await process_payment(request, envelope_for(request, **envelope), OWNER, world.deps)


# ---- outcomes of one charge ----------------------------------------------------------------


async def test_success_is_stored_announced_and_replied(world: World) -> None:
    """A charge stores succeeded, emits payment.succeeded and replies with the correlation id."""
    request = make_request()
    world.script(Charged("ch_1"))

    handled = await run(world, request)

    assert handled == Handled(Outcome.SUCCEEDED, gateway_called=True, transient=False)
    row = world.store.rows[request.key]
    assert (row.status, row.gateway_charge_id, row.lease_owner) == (
        PaymentStatus.SUCCEEDED,
        "ch_1",
        None,
    )
    assert world.publisher.routing_keys == ["payment.succeeded"]
    [reply] = world.publisher.replies
    assert (reply.reply_to, reply.correlation_id) == ("amq.gen-reply", "corr-1")
    assert reply.result.status is PaymentStatus.SUCCEEDED
    assert reply.result.gateway_charge_id == "ch_1"
    assert not world.publisher.retries
    assert not world.publisher.parks


async def test_every_charge_uses_the_request_itself(world: World) -> None:
    """The gateway is asked to charge exactly the decoded request (its key is the payment id)."""
    request = make_request()
    world.script(Charged("ch_1"))
    await run(world, request)
    assert world.gateway.calls == [request]


async def test_decline_is_final_without_retry_or_park(world: World) -> None:
    """A 402 stores declined, announces payment.declined, and is neither retried nor parked."""
    request = make_request()
    world.script(Declined(DECLINE))

    handled = await run(world, request)

    assert handled.outcome is Outcome.DECLINED
    assert world.store.rows[request.key].status is PaymentStatus.DECLINED
    assert world.store.rows[request.key].last_error == DECLINE
    assert world.publisher.routing_keys == ["payment.declined"]
    assert world.publisher.replies[0].result.error == DECLINE
    assert not world.publisher.retries
    assert not world.publisher.parks


async def test_transient_failure_schedules_the_next_rung_with_attempt_plus_one(
    world: World,
) -> None:
    """A 503 on the second attempt goes to the 5 s queue as attempt 2 and announces the retry."""
    request = make_request()
    world.script(transient())

    handled = await run(world, request, attempt=1)

    assert (handled.outcome, handled.delay) == (Outcome.RETRY, 5.0)
    assert handled.transient is True
    [retry] = world.publisher.retries
    assert (retry.delay, retry.attempt, retry.deferred) == (5.0, 2, False)
    assert world.store.rows[request.key].status is PaymentStatus.RETRYING
    [(key, event)] = world.publisher.events
    assert key == "payment.retry_scheduled"
    assert isinstance(event, RetryScheduled)
    assert (event.attempts, event.delay_seconds, event.error) == (2, 5.0, BUSY)
    assert not world.publisher.parks
    assert not world.publisher.replies


async def test_a_failure_while_the_gateway_is_down_is_retried_without_spending_an_attempt(
    world: World,
) -> None:
    """With the circuit holding the gateway for down, a 503 on the 4th and last attempt is
    not parked: the copy goes to the first queue still carrying 3 counted attempts."""
    request = make_request()
    world.script(transient())
    deps = dataclasses.replace(world.deps, gateway_down=lambda _request: True)

    handled = await process_payment(
        request, envelope_for(request, attempt=POLICY.max_attempts - 1), OWNER, deps
    )

    assert (handled.outcome, handled.delay) == (Outcome.RETRY, 1.0)
    [retry] = world.publisher.retries
    assert (retry.delay, retry.attempt) == (1.0, POLICY.max_attempts - 1)
    assert not world.publisher.parks


async def test_rate_limit_retry_after_picks_a_long_enough_queue(world: World) -> None:
    """A 429 asking for 10 s on the first attempt is retried through the 30 s queue."""
    request = make_request()
    world.script(Transient(TransientKind.RATE_LIMITED, BUSY, http_status=429, retry_after=10))
    await run(world, request)
    assert world.publisher.retries[0].delay == 30.0
    assert world.publisher.retries[0].attempt == 1


async def test_transient_failure_at_max_attempts_parks_retries_exhausted(world: World) -> None:
    """The last allowed attempt failing transiently parks the message as retries_exhausted."""
    request = make_request()
    world.script(transient())

    handled = await run(world, request, attempt=POLICY.max_attempts - 1)

    assert (handled.outcome, handled.park_reason) == (Outcome.PARKED, ParkReason.RETRIES_EXHAUSTED)
    [(_, notice)] = world.publisher.parks
    assert notice.reason is ParkReason.RETRIES_EXHAUSTED
    assert notice.attempts == POLICY.max_attempts
    assert notice.payment_id == request.key
    assert notice.merchant_id == "m_123"
    assert notice.http_status == 503
    row = world.store.rows[request.key]
    assert (row.status, row.dead_letter_reason) == (
        PaymentStatus.DEAD_LETTERED,
        "retries_exhausted",
    )
    assert world.publisher.routing_keys == ["payment.dead_lettered"]
    assert not world.publisher.retries


async def test_rejection_parks_gateway_rejected_at_once(world: World) -> None:
    """A 422 on the first attempt parks as gateway_rejected with the HTTP status, no retry."""
    request = make_request()
    world.script(Rejected(422, BAD))

    handled = await run(world, request)

    assert (handled.outcome, handled.park_reason) == (Outcome.PARKED, ParkReason.GATEWAY_REJECTED)
    [(_, notice)] = world.publisher.parks
    assert (notice.reason, notice.http_status, notice.error) == (
        ParkReason.GATEWAY_REJECTED,
        422,
        BAD,
    )
    assert world.store.rows[request.key].dead_letter_reason == "gateway_rejected"
    assert not world.publisher.retries


async def test_gateway_auth_failure_is_retried_not_parked(world: World) -> None:
    """A 401 (our credentials) is retried like any outage, never parked as rejected."""
    request = make_request()
    world.script(Transient(TransientKind.GATEWAY_AUTH, BUSY, http_status=401))
    await run(world, request)
    assert len(world.publisher.retries) == 1
    assert not world.publisher.parks


async def test_each_attempt_is_recorded_with_its_number_and_outcome(world: World) -> None:
    """The store gets one attempt record per gateway call with number, outcome and status."""
    request = make_request()
    world.script(transient(), Charged("ch_9"))
    await run(world, request, attempt=0)
    await run(world, request, attempt=1)
    records = [(a.attempt, a.outcome, a.http_status) for _, a in world.store.attempts]
    assert records == [(1, "transient:server_error", 503), (2, "succeeded", 200)]


# ---- duplicates, leases and conflicts --------------------------------------------------------


async def test_duplicate_of_a_final_payment_resends_the_stored_result(world: World) -> None:
    """A redelivered final payment calls no gateway and replies with the stored result."""
    request = make_request()
    world.store.put_final(request, PaymentStatus.SUCCEEDED, charge_id="ch_first", attempts=2)

    handled = await run(world, request)

    assert handled == Handled(Outcome.DUPLICATE)
    assert world.gateway.calls == []
    [reply] = world.publisher.replies
    assert (reply.result.status, reply.result.gateway_charge_id, reply.result.attempts) == (
        PaymentStatus.SUCCEEDED,
        "ch_first",
        2,
    )
    assert reply.correlation_id == "corr-1"
    assert world.publisher.routing_keys == ["payment.succeeded"]
    assert not world.publisher.retries
    assert not world.publisher.parks


async def test_payment_held_by_another_worker_is_deferred_without_using_an_attempt(
    world: World,
) -> None:
    """While another worker's lease runs, the copy is deferred past the lease, attempt unchanged."""
    request = make_request()
    await world.store.claim(request, "worker-b", 12.0, reopen=False)

    handled = await run(world, request, attempt=2)

    assert handled.outcome is Outcome.DEFERRED
    assert world.gateway.calls == []
    [retry] = world.publisher.retries
    assert retry.deferred is True
    assert retry.attempt == 2
    assert retry.delay >= 12.0
    assert world.store.rows[request.key].lease_owner == "worker-b"
    assert not world.publisher.events


async def test_expired_lease_of_another_worker_can_be_taken_over(world: World) -> None:
    """A crashed worker's lease expires, and the next delivery charges the payment."""
    request = make_request()
    await world.store.claim(request, "worker-b", LEASE, reopen=False)
    world.clock.advance(LEASE + 1)
    world.script(Charged("ch_2"))

    handled = await run(world, request)

    assert handled.outcome is Outcome.SUCCEEDED
    assert world.store.rows[request.key].status is PaymentStatus.SUCCEEDED


async def test_fingerprint_conflict_parks_invalid_without_charging(world: World) -> None:
    """The same payment_id with another amount is parked invalid_message and never charged."""
    first = make_request()
    world.store.put_final(first, PaymentStatus.SUCCEEDED, charge_id="ch_1")
    second = make_request(payment_id=first.key, amount=5000)

    handled = await run(world, second)

    assert (handled.outcome, handled.park_reason) == (Outcome.PARKED, ParkReason.INVALID_MESSAGE)
    assert world.gateway.calls == []
    [(_, notice)] = world.publisher.parks
    assert notice.reason is ParkReason.INVALID_MESSAGE
    assert notice.error.code == "idempotency_conflict"
    row = world.store.rows[first.key]
    assert (row.status, row.gateway_charge_id) == (PaymentStatus.SUCCEEDED, "ch_1")
    assert not world.publisher.events


async def test_replay_of_a_dead_lettered_payment_reopens_it(world: World) -> None:
    """A DLQ replay of a dead-lettered payment is charged again and can succeed."""
    request = make_request()
    world.store.put_final(request, PaymentStatus.DEAD_LETTERED)
    world.script(Charged("ch_replayed"))

    handled = await run(world, request, replay_of="dlq-entry-7")

    assert handled.outcome is Outcome.SUCCEEDED
    assert len(world.gateway.calls) == 1
    assert world.store.rows[request.key].status is PaymentStatus.SUCCEEDED
    [(_, record)] = world.store.attempts
    assert record.replay_of == "dlq-entry-7"


async def test_a_dead_lettered_payment_without_replay_header_stays_parked(world: World) -> None:
    """A plain redelivery of a dead-lettered payment is a duplicate, not a new charge."""
    request = make_request()
    world.store.put_final(request, PaymentStatus.DEAD_LETTERED)
    handled = await run(world, request)
    assert handled.outcome is Outcome.DUPLICATE
    assert world.gateway.calls == []


async def test_replay_of_a_succeeded_payment_is_not_charged_again(world: World) -> None:
    """Replaying a payment that already succeeded re-sends the result and charges nothing."""
    request = make_request()
    world.store.put_final(request, PaymentStatus.SUCCEEDED, charge_id="ch_1")
    handled = await run(world, request, replay_of="dlq-entry-8")
    assert handled.outcome is Outcome.DUPLICATE
    assert world.gateway.calls == []


async def test_late_transient_after_another_delivery_succeeded_only_replies(
    world: World,
) -> None:
    """If another delivery finished the payment during our charge, we neither retry nor park."""
    request = make_request()

    def other_worker_wins(_: PaymentRequest) -> None:
        world.store.rows[request.key].status = PaymentStatus.SUCCEEDED
        world.store.rows[request.key].gateway_charge_id = "ch_other"

    world.gateway.during_charge = other_worker_wins
    world.script(transient())

    handled = await run(world, request)

    assert handled.outcome is Outcome.DUPLICATE
    assert not world.publisher.retries
    assert not world.publisher.parks
    assert world.publisher.replies[0].result.gateway_charge_id == "ch_other"


async def test_late_rejection_after_another_delivery_succeeded_is_not_parked(
    world: World,
) -> None:
    """A rejection that loses the race to a success keeps the success and parks nothing."""
    request = make_request()

    def other_worker_wins(_: PaymentRequest) -> None:
        world.store.rows[request.key].status = PaymentStatus.SUCCEEDED

    world.gateway.during_charge = other_worker_wins
    world.script(Rejected(409, BAD))

    handled = await run(world, request)

    assert handled.outcome is Outcome.DUPLICATE
    assert world.store.rows[request.key].status is PaymentStatus.SUCCEEDED
    assert not world.publisher.parks


# ---- invalid and poison messages ----------------------------------------------------------------


async def test_park_invalid_never_calls_the_gateway(world: World) -> None:
    """An undecodable message is parked invalid_message with the ids it had, nothing charged."""
    envelope = Envelope(body=b"{broken", headers={})
    error = ErrorInfo(code="not_json", message="body is not JSON")
    invalid = Invalid(error, payment_id="pid-1", merchant_id="m_9")

    handled = await park_invalid(envelope, error, world.deps, invalid)

    assert (handled.outcome, handled.park_reason) == (Outcome.PARKED, ParkReason.INVALID_MESSAGE)
    assert world.gateway.calls == []
    assert world.store.rows == {}
    [(parked, notice)] = world.publisher.parks
    assert parked is envelope
    assert (notice.reason, notice.error, notice.payment_id, notice.merchant_id) == (
        ParkReason.INVALID_MESSAGE,
        error,
        "pid-1",
        "m_9",
    )
    assert world.journal.entries == ["publish.park"]


async def test_park_poison_marks_the_row_and_parks_with_the_exception_type(world: World) -> None:
    """A crashing payment is marked dead_lettered/poison and parked naming the exception."""
    request = make_request()
    await world.store.claim(request, OWNER, LEASE, reopen=False)
    envelope = envelope_for(request, attempt=1)

    handled = await park_poison(request, envelope, KeyError("boom"), world.deps)

    assert (handled.outcome, handled.park_reason) == (Outcome.PARKED, ParkReason.POISON)
    assert world.gateway.calls == []
    row = world.store.rows[request.key]
    assert (row.status, row.dead_letter_reason) == (PaymentStatus.DEAD_LETTERED, "poison")
    [(_, notice)] = world.publisher.parks
    assert notice.reason is ParkReason.POISON
    assert notice.exception_type == "KeyError"
    assert notice.error.code == "processing_crashed"
    assert notice.payment_id == request.key
    assert world.publisher.routing_keys == ["payment.dead_lettered"]
    assert world.journal.index("store.mark_dead_lettered") < world.journal.index("publish.park")


async def test_park_poison_without_a_request_parks_without_touching_the_store(
    world: World,
) -> None:
    """A crash before decoding parks the raw message and announces nothing."""
    envelope = Envelope(body=b"?", headers={})
    handled = await park_poison(None, envelope, RuntimeError("x"), world.deps)
    assert (handled.outcome, handled.park_reason) == (Outcome.PARKED, ParkReason.POISON)
    assert "store.mark_dead_lettered" not in world.journal.entries
    assert world.publisher.parks[0][1].exception_type == "RuntimeError"
    assert not world.publisher.events


async def test_park_poison_of_a_succeeded_payment_only_replies(world: World) -> None:
    """A payment that already succeeded is never parked as poison: its result is re-sent."""
    request = make_request()
    world.store.put_final(request, PaymentStatus.SUCCEEDED, charge_id="ch_1")
    handled = await park_poison(request, envelope_for(request), ValueError(), world.deps)
    assert handled.outcome is Outcome.DUPLICATE
    assert not world.publisher.parks
    assert world.store.rows[request.key].status is PaymentStatus.SUCCEEDED


# ---- ordering: commit the outcome before publishing ------------------------------------------


@pytest.mark.parametrize(
    ("answer", "attempt", "recorded"),
    [
        (Charged("ch_1"), 0, "store.record:succeeded"),
        (Declined(DECLINE), 0, "store.record:declined"),
        (transient(), 0, "store.record:retrying"),
        (transient(), POLICY.max_attempts - 1, "store.record:dead_lettered"),
        (Rejected(400, BAD), 0, "store.record:dead_lettered"),
    ],
)
async def test_outcome_is_committed_before_anything_is_published(
    world: World, answer: GatewayAnswer, attempt: int, recorded: str
) -> None:
    """Claim, charge, then record the outcome; only after that do retries/parks/events go out."""
    request = make_request()
    world.script(answer)

    await run(world, request, attempt=attempt)

    entries = world.journal.entries
    assert entries[:3] == ["store.claim", "gateway.charge", recorded]
    assert entries[3:], "something must be published after the outcome is stored"
    assert all(entry.startswith("publish.") for entry in entries[3:])


async def test_retry_copy_is_published_before_the_retry_event(world: World) -> None:
    """The retry copy (which must not be lost) goes out before the optional event."""
    request = make_request()
    world.script(transient())
    await run(world, request)
    assert world.journal.entries[-2:] == [
        "publish.retry",
        "publish.event:payment.retry_scheduled",
    ]


async def test_park_copy_is_published_before_the_dead_lettered_event(world: World) -> None:
    """The DLQ copy goes out before the dead_lettered event and the reply."""
    request = make_request()
    world.script(Rejected(404, BAD))
    await run(world, request)
    assert world.journal.entries[3:] == [
        "publish.park",
        "publish.event:payment.dead_lettered",
        "publish.reply",
    ]


async def test_reply_result_matches_the_stored_snapshot(world: World) -> None:
    """The reply carries exactly what the store holds: status, attempts, error and time."""
    request = make_request()
    world.script(Declined(DECLINE))
    await run(world, request)
    snapshot = await world.store.get(request.key)
    assert snapshot is not None
    reply_result: PaymentResult = world.publisher.replies[0].result
    assert reply_result == snapshot.result()
