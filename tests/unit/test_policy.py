"""The retry policy: status classes, the delay ladder, and retry-or-park decisions."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retry.policy import (
    Charged,
    Decline,
    Declined,
    Park,
    PolicyError,
    Rejected,
    Retry,
    RetryPolicy,
    StatusClass,
    Succeed,
    Transient,
    TransientKind,
    classify_status,
    parse_delays,
)
from schemas.outcome import ErrorInfo, ParkReason

LADDER = (1.0, 5.0, 30.0, 120.0, 600.0)
ERROR = ErrorInfo(code="boom", message="gateway said no")


def policy(max_attempts: int = 6) -> RetryPolicy:
    return RetryPolicy(LADDER, max_attempts)


def transient(retry_after: float | None = None) -> Transient:
    return Transient(TransientKind.SERVER_ERROR, ERROR, http_status=503, retry_after=retry_after)


# ---- classify_status --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, StatusClass.SUCCESS),
        (201, StatusClass.SUCCESS),
        (204, StatusClass.SUCCESS),
        (299, StatusClass.SUCCESS),
        (402, StatusClass.DECLINED),
        (400, StatusClass.REJECTED),
        (404, StatusClass.REJECTED),
        (409, StatusClass.REJECTED),
        (422, StatusClass.REJECTED),
        (401, StatusClass.TRANSIENT),
        (403, StatusClass.TRANSIENT),
        (408, StatusClass.TRANSIENT),
        (429, StatusClass.TRANSIENT),
        (500, StatusClass.TRANSIENT),
        (502, StatusClass.TRANSIENT),
        (503, StatusClass.TRANSIENT),
        (504, StatusClass.TRANSIENT),
        (302, StatusClass.TRANSIENT),
    ],
)
def test_classify_status_follows_the_spec_table(status: int, expected: StatusClass) -> None:
    """Each HTTP status of POST /v1/charges maps to the class SPEC's table gives it."""
    assert classify_status(status) is expected


def test_gateway_auth_failures_are_never_rejections() -> None:
    """401 and 403 are our credentials' fault, so they are retried rather than parked."""
    assert {classify_status(401), classify_status(403)} == {StatusClass.TRANSIENT}


# ---- delay_for ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(1, 1.0), (2, 5.0), (3, 30.0), (4, 120.0), (5, 600.0), (6, 600.0), (50, 600.0)],
)
def test_delay_for_walks_the_ladder_and_repeats_the_last(attempt: int, expected: float) -> None:
    """Failed attempt n waits the n-th delay, and the longest delay repeats past the ladder."""
    assert policy().delay_for(attempt) == expected


def test_delay_for_attempt_zero_uses_the_first_delay() -> None:
    """An attempt count below one (a deferred message) still picks the first rung."""
    assert policy().delay_for(0) == 1.0


@pytest.mark.parametrize(
    ("attempt", "retry_after", "expected"),
    [
        (1, 3.0, 5.0),  # shortest delay >= 3 s
        (1, 5.0, 5.0),  # exactly a rung
        (1, 31.0, 120.0),
        (1, 10_000.0, 600.0),  # longer than the ladder: the longest queue
        (3, 2.0, 30.0),  # shorter than the attempt's own rung: the rung wins
        (1, 0.0, 1.0),
        (1, None, 1.0),
    ],
)
def test_retry_after_moves_the_delay_up_to_a_long_enough_queue(
    attempt: int, retry_after: float | None, expected: float
) -> None:
    """Retry-After picks the shortest queue waiting at least that long, else the longest."""
    assert policy().delay_for(attempt, retry_after) == expected


@given(
    delays=st.lists(
        st.floats(min_value=0.01, max_value=10_000, allow_nan=False),
        min_size=1,
        max_size=8,
        unique=True,
    ).map(lambda xs: tuple(sorted(xs))),
    attempt=st.integers(min_value=0, max_value=20),
    retry_after=st.none() | st.floats(min_value=0, max_value=20_000, allow_nan=False),
)
def test_chosen_delay_is_a_rung_that_honours_retry_after(
    delays: tuple[float, ...], attempt: int, retry_after: float | None
) -> None:
    """The delay is always a ladder rung, and at least Retry-After whenever some rung is."""
    chosen = RetryPolicy(delays, 3).delay_for(attempt, retry_after)
    assert chosen in delays
    if retry_after is not None and any(d >= retry_after for d in delays):
        assert chosen >= retry_after
        # ...and no shorter rung that also satisfies Retry-After and the attempt's own rung.
        base = delays[min(max(attempt, 1), len(delays)) - 1]
        assert chosen == min(d for d in delays if d >= max(retry_after, base))
    elif retry_after is not None:
        assert chosen == delays[-1]


# ---- decide ------------------------------------------------------------------------------


def test_charged_answer_succeeds() -> None:
    """A charge is a success carrying the gateway's charge id."""
    assert policy().decide(Charged("ch_1"), 1) == Succeed("ch_1")


def test_declined_answer_is_final_even_on_the_last_attempt() -> None:
    """A decline is a business result: never retried and never parked, whatever the attempt."""
    for attempt in (1, 6, 99):
        assert policy().decide(Declined(ERROR), attempt) == Decline(ERROR)


def test_rejected_answer_is_parked_as_gateway_rejected() -> None:
    """A 4xx rejection parks at once with reason gateway_rejected, even on the first try."""
    decision = policy().decide(Rejected(422, ERROR), 1)
    assert decision == Park(ParkReason.GATEWAY_REJECTED, ERROR)


def test_transient_answer_retries_with_the_next_attempt_number() -> None:
    """A transient failure on attempt n retries after the n-th delay as attempt n+1."""
    assert policy().decide(transient(), 2) == Retry(5.0, 3, ERROR, in_doubt=True)


def test_transient_answer_passes_retry_after_to_the_delay() -> None:
    """A 429's Retry-After is honoured by the retry decision."""
    answer = Transient(TransientKind.RATE_LIMITED, ERROR, http_status=429, retry_after=20.0)
    decision = policy().decide(answer, 1)
    assert isinstance(decision, Retry)
    assert decision.delay == 30.0


def test_transient_answer_is_retried_up_to_the_attempt_before_the_budget() -> None:
    """Attempt max_attempts - 1 still retries: the budget is not exhausted one early."""
    decision = policy(max_attempts=6).decide(transient(), 5)
    assert decision == Retry(600.0, 6, ERROR, in_doubt=True)


def not_sent() -> Transient:
    return Transient(TransientKind.CONNECT_FAILED, ERROR)


def test_transient_answer_parks_exactly_at_max_attempts() -> None:
    """The failed attempt number max_attempts parks with reason retries_exhausted."""
    assert policy(max_attempts=6).decide(not_sent(), 6) == Park(ParkReason.RETRIES_EXHAUSTED, ERROR)


def test_single_attempt_budget_parks_the_first_transient() -> None:
    """With max_attempts=1 a transient failure is never retried."""
    assert policy(max_attempts=1).decide(not_sent(), 1) == Park(ParkReason.RETRIES_EXHAUSTED, ERROR)


# ---- parse_delays and validation ---------------------------------------------------------


def test_parse_delays_reads_seconds_with_fractions_and_spaces() -> None:
    """A comma-separated list with fractions and blanks parses into floats in order."""
    assert parse_delays("0.1, 0.25,1,30") == (0.1, 0.25, 1.0, 30.0)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "at least one"),
        (" , ", "at least one"),
        ("1,abc", "not a comma-separated list"),
        ("5,1", "strictly increasing"),
        ("1,1", "strictly increasing"),
        ("0,1", "positive"),
        ("-1,2", "positive"),
        ("nan", "finite"),
        ("1,inf", "finite"),
    ],
)
def test_parse_delays_refuses_bad_ladders_with_the_reason(text: str, fragment: str) -> None:
    """Each malformed ladder raises PolicyError whose message says what is wrong."""
    with pytest.raises(PolicyError, match=fragment):
        parse_delays(text)


@pytest.mark.parametrize(
    ("delays", "max_attempts", "fragment"),
    [
        ((), 3, "at least one"),
        ((5.0, 1.0), 3, "strictly increasing"),
        ((1.0, 1.0), 3, "strictly increasing"),
        ((0.0,), 3, "positive"),
        ((-2.0, 1.0), 3, "positive"),
        ((math.inf,), 3, "finite"),
        ((1.0,), 0, "at least 1"),
    ],
)
def test_retry_policy_refuses_inconsistent_settings(
    delays: tuple[float, ...], max_attempts: int, fragment: str
) -> None:
    """An empty, non-increasing, non-positive or non-finite ladder or no attempts is refused."""
    with pytest.raises(PolicyError, match=fragment):
        RetryPolicy(delays, max_attempts)
