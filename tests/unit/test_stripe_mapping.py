"""The Stripe mapping table, row by row, and the amounts Stripe would refuse.

Every row of ``STRIPE_MAPPING`` is hit by at least one case here (a test checks that), so a
row added without a case fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from retry.policy import (
    Charged,
    Declined,
    GatewayAnswer,
    LookupCharged,
    LookupNoCharge,
    LookupUnavailable,
    Park,
    Rejected,
    RetryPolicy,
    Transient,
    TransientKind,
)
from retry.stripe_amounts import decimals, refusal
from retry.stripe_mapping import (
    STRIPE_MAPPING,
    StripeFact,
    StripeFailure,
    StripeIntent,
    WireFault,
    classify,
    lookup_answer,
    search_answer,
)
from schemas.outcome import ParkReason

CASES: list[tuple[str, StripeFact, GatewayAnswer | type]] = [
    (
        "succeeded",
        StripeIntent("pi_1", "succeeded", latest_charge="ch_1"),
        Charged("ch_1"),
    ),
    ("succeeded", StripeIntent("pi_2", "succeeded"), Charged("pi_2")),
    ("processing", StripeIntent("pi_3", "processing"), Transient),
    ("requires_action", StripeIntent("pi_4", "requires_action"), Declined),
    (
        "requires_payment_method",
        StripeIntent(
            "pi_5",
            "requires_payment_method",
            code="card_declined",
            decline_code="insufficient_funds",
            message="Your card has insufficient funds.",
        ),
        Declined,
    ),
    ("canceled", StripeIntent("pi_6", "canceled", cancellation_reason="automatic"), Declined),
    (
        "card_error",
        StripeFailure("CardError", 402, "card_error", "card_declined", "stolen_card", "no"),
        Declined,
    ),
    ("idempotency_error", StripeFailure("IdempotencyError", 400, "idempotency_error"), Rejected),
    ("should_retry_false", StripeFailure("APIError", 500, should_retry=False), Rejected),
    ("should_retry_false", StripeFailure("RateLimitError", 429, should_retry=False), Rejected),
    ("should_retry_true", StripeFailure("APIError", 409, should_retry=True), Transient),
    ("rate_limited", StripeFailure("RateLimitError", 429, retry_after=7.0), Transient),
    ("gateway_auth", StripeFailure("AuthenticationError", 401), Transient),
    ("gateway_auth", StripeFailure("PermissionError", 403), Transient),
    ("connection", StripeFailure("APIConnectionError", wire=WireFault.NOT_SENT), Transient),
    ("connection", StripeFailure("APIConnectionError", wire=WireFault.TIMED_OUT), Transient),
    ("connection", StripeFailure("APIConnectionError", wire=WireFault.DROPPED), Transient),
    (
        "invalid_request",
        StripeFailure("InvalidRequestError", 404, code="resource_missing"),
        Rejected,
    ),
    (
        "invalid_request",
        StripeFailure("InvalidRequestError", 400, code="parameter_missing"),
        Rejected,
    ),
    ("server_error", StripeFailure("APIError", 503, retry_after=2.0), Transient),
    ("server_error", StripeFailure("APIError", 500, should_retry=None), Transient),
    ("unexpected", StripeIntent("pi_7", "requires_capture"), Transient),
    ("unexpected", StripeFailure("APIError", 418), Transient),
    ("unexpected", StripeFailure("SomeNewError", 400), Transient),
]


@pytest.mark.parametrize(("row", "fact", "expected"), CASES)
def test_each_row_gives_its_answer(row: str, fact: StripeFact, expected: object) -> None:
    matched, answer = classify(fact)
    assert matched.name == row
    if isinstance(expected, type):
        assert isinstance(answer, expected)
    else:
        assert answer == expected


def test_every_row_of_the_table_has_a_case() -> None:
    assert {row.name for row in STRIPE_MAPPING} == {case[0] for case in CASES}


def answer(fact: StripeFact) -> GatewayAnswer:
    return classify(fact)[1]


def test_processing_is_pending_at_the_gateway() -> None:
    result = answer(StripeIntent("pi_3", "processing"))
    assert isinstance(result, Transient)
    assert result.kind is TransientKind.PENDING_AT_GATEWAY
    assert result.error.code == "payment_processing"


def test_requires_action_off_session_is_authentication_required() -> None:
    result = answer(StripeIntent("pi_4", "requires_action"))
    assert isinstance(result, Declined)
    assert result.error.code == "authentication_required"


def test_a_decline_keeps_stripes_decline_code_and_code() -> None:
    result = answer(
        StripeFailure(
            "CardError", 402, "card_error", "card_declined", "insufficient_funds", "Insufficient."
        )
    )
    assert isinstance(result, Declined)
    assert result.error.code == "insufficient_funds"
    assert "code=card_declined" in result.error.message
    assert "decline_code=insufficient_funds" in result.error.message
    without_decline_code = answer(StripeFailure("CardError", 402, "card_error", "expired_card"))
    assert isinstance(without_decline_code, Declined)
    assert without_decline_code.error.code == "expired_card"


def test_an_idempotency_conflict_is_parked_as_an_invalid_message() -> None:
    result = answer(StripeFailure("IdempotencyError", 400, "idempotency_error", message="Keys…"))
    assert isinstance(result, Rejected)
    assert result.error.code == "idempotency_conflict"
    decision = RetryPolicy((1.0,), 3).decide(result, 1)
    assert decision == Park(ParkReason.INVALID_MESSAGE, result.error)


def test_other_invalid_requests_are_parked_as_gateway_rejected() -> None:
    result = answer(StripeFailure("InvalidRequestError", 404, code="resource_missing"))
    assert isinstance(result, Rejected)
    assert (result.http_status, result.error.code) == (404, "resource_missing")
    assert RetryPolicy((1.0,), 3).decide(result, 1) == Park(
        ParkReason.GATEWAY_REJECTED, result.error
    )


def test_rate_limit_honours_retry_after() -> None:
    result = answer(StripeFailure("RateLimitError", 429, code="rate_limit", retry_after=7.0))
    assert isinstance(result, Transient)
    assert (result.kind, result.retry_after, result.http_status) == (
        TransientKind.RATE_LIMITED,
        7.0,
        429,
    )
    assert RetryPolicy((1.0, 5.0, 30.0), 6).decide(result, 1).delay == 30.0  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("wire", "kind"),
    [
        (WireFault.NOT_SENT, TransientKind.CONNECT_FAILED),
        (WireFault.TIMED_OUT, TransientKind.TIMEOUT),
        (WireFault.DROPPED, TransientKind.CONNECTION),
    ],
)
def test_a_connection_error_says_whether_stripe_may_have_seen_the_request(
    wire: WireFault, kind: TransientKind
) -> None:
    result = answer(StripeFailure("APIConnectionError", wire=wire))
    assert isinstance(result, Transient)
    assert result.kind is kind


def test_stripe_should_retry_wins_over_the_status() -> None:
    not_again = answer(StripeFailure("APIError", 503, should_retry=False))
    assert isinstance(not_again, Rejected)
    again = answer(StripeFailure("APIError", 409, should_retry=True))
    assert isinstance(again, Transient)
    assert again.kind is TransientKind.SERVER_ERROR
    plain = answer(StripeFailure("APIError", 502, retry_after=3.0))
    assert isinstance(plain, Transient)
    assert (plain.kind, plain.retry_after) == (TransientKind.SERVER_ERROR, 3.0)


def test_our_credentials_are_an_outage_never_a_rejection() -> None:
    for cls, status in (("AuthenticationError", 401), ("PermissionError", 403)):
        result = answer(StripeFailure(cls, status, message="Invalid API Key provided"))
        assert isinstance(result, Transient)
        assert result.kind is TransientKind.GATEWAY_AUTH


def test_lookup_reads_the_same_facts_for_did_it_charge() -> None:
    assert lookup_answer(StripeIntent("pi", "succeeded", latest_charge="ch")) == LookupCharged("ch")
    assert lookup_answer(StripeFailure("CardError", 402, code="card_declined")) == (
        LookupNoCharge()
    )
    assert lookup_answer(StripeIntent("pi", "requires_payment_method")) == LookupNoCharge()
    assert lookup_answer(StripeFailure("InvalidRequestError", 400)) == LookupNoCharge()
    for unknown in (
        StripeIntent("pi", "processing"),
        StripeFailure("APIError", 500),
        StripeFailure("APIError", 500, should_retry=False),
        StripeFailure("IdempotencyError", 400),
        StripeFailure("APIConnectionError", wire=WireFault.TIMED_OUT),
    ):
        assert isinstance(lookup_answer(unknown), LookupUnavailable), unknown


def test_search_results_tell_whether_a_payment_was_charged() -> None:
    assert search_answer([]) == LookupNoCharge()
    assert search_answer([StripeIntent("pi_a", "requires_payment_method")]) == LookupNoCharge()
    assert search_answer(
        [StripeIntent("pi_a", "canceled"), StripeIntent("pi_b", "succeeded", latest_charge="ch")]
    ) == LookupCharged("ch")
    assert isinstance(search_answer([StripeIntent("pi_a", "processing")]), LookupUnavailable)


@pytest.mark.parametrize(
    ("amount", "currency", "code"),
    [
        (500, "JPY", None),
        (49, "JPY", "amount_too_small"),
        (50, "KRW", None),
        (49, "USD", "amount_too_small"),
        (50, "USD", None),
        (29, "GBP", "amount_too_small"),
        (5120, "KWD", None),
        (5125, "KWD", "invalid_amount_for_currency"),
        (500, "ISK", None),
        (550, "ISK", "invalid_amount_for_currency"),
        (99_999_999, "EUR", None),
        (100_000_000, "EUR", "amount_too_large"),
        (100_000_000, "IDR", None),
        (1, "XYZ", None),
    ],
)
def test_amounts_stripe_would_refuse(amount: int, currency: str, code: str | None) -> None:
    refused = refusal(amount, currency)
    assert (refused.code if refused else None) == code


def test_decimals_of_stripe_currencies() -> None:
    assert [decimals(c) for c in ("JPY", "krw", "EUR", "KWD", "ISK")] == [0, 0, 2, 3, 2]


def test_the_readme_documents_every_row_of_the_table() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    lines = [line for line in readme.splitlines() if line.startswith("| ")]
    for row in STRIPE_MAPPING:
        assert any(
            f"`{row.name}`" in line and row.when in line and row.outcome in line for line in lines
        ), f"README lacks the mapping row {row.name!r}"


def test_a_rate_limited_lookup_tells_the_sender_to_slow_down() -> None:
    """A 429 on the lookup's re-send is "cannot say now" *and* a signal for the rate limiter,
    with Stripe's Retry-After; other failures to answer are not rate limits."""
    limited = lookup_answer(StripeFailure("RateLimitError", 429, retry_after=2.0))
    assert isinstance(limited, LookupUnavailable)
    assert (limited.rate_limited, limited.retry_after) == (True, 2.0)
    down = lookup_answer(StripeFailure("APIError", 500))
    assert isinstance(down, LookupUnavailable)
    assert (down.rate_limited, down.retry_after) == (False, None)
