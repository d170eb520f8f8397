"""What Stripe's answers mean for a payment: one ordered table of facts -> ``GatewayAnswer``.

The Stripe adapter turns what it saw into plain facts -- a PaymentIntent (``StripeIntent``) or
a failure (``StripeFailure``: the library's error class name, HTTP status, Stripe's ``code``
and ``decline_code``, the ``Stripe-Should-Retry`` and ``Retry-After`` headers, and for network
errors whether the request may have reached Stripe). ``STRIPE_MAPPING`` decides, first
matching row wins. Nothing here imports ``stripe`` or ``httpx``: the table is tested row by
row with plain values, and the README's mapping table is this table.

A "lookup" is the same facts read for another question -- did Stripe charge? --
(``lookup_answer``, ``search_answer``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from retry.policy import (
    Charged,
    Declined,
    GatewayAnswer,
    LookupAnswer,
    LookupCharged,
    LookupNoCharge,
    LookupUnavailable,
    Rejected,
    Transient,
    TransientKind,
)
from schemas.cards import redact_card_numbers
from schemas.outcome import ErrorInfo, ParkReason


class WireFault(StrEnum):
    """How a request without an HTTP answer failed, as the HTTP client saw it."""

    NOT_SENT = "not_sent"
    """The connection was never opened (refused, DNS, connect timeout): Stripe saw nothing."""
    TIMED_OUT = "timed_out"
    """The request was (or may have been) sent and no answer came in time."""
    DROPPED = "dropped"
    """The connection broke after the request may have been written."""


@dataclass(frozen=True, slots=True)
class StripeIntent:
    """A PaymentIntent Stripe returned with a 2xx, reduced to what decides the outcome."""

    id: str
    status: str
    latest_charge: str | None = None
    code: str | None = None
    """``last_payment_error.code``"""
    decline_code: str | None = None
    message: str | None = None
    cancellation_reason: str | None = None
    replayed: bool = False
    """``Idempotent-Replayed: true``: Stripe's stored answer to the first request with the key."""


@dataclass(frozen=True, slots=True)
class StripeFailure:
    """A request that returned no PaymentIntent: Stripe's error answer or a network fault."""

    error_class: str
    """The ``stripe`` exception's class name: ``CardError``, ``RateLimitError``, ..."""
    http_status: int | None = None
    error_type: str | None = None
    code: str | None = None
    decline_code: str | None = None
    message: str = ""
    should_retry: bool | None = None
    """The ``Stripe-Should-Retry`` header: ``None`` when absent."""
    retry_after: float | None = None
    wire: WireFault | None = None
    """For ``APIConnectionError``: whether the request may have reached Stripe."""


StripeFact = StripeIntent | StripeFailure


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the mapping: when ``matches``, the payment gets ``answer``."""

    name: str
    when: str
    outcome: str
    matches: Callable[[StripeFact], bool]
    answer: Callable[[StripeFact], GatewayAnswer]


def _error(code: str, message: str) -> ErrorInfo:
    return ErrorInfo(
        code=redact_card_numbers(code)[:64], message=redact_card_numbers(message)[:500]
    )


def _describe(fact: StripeFact) -> str:
    if isinstance(fact, StripeIntent):
        parts = [f"PaymentIntent {fact.id} is {fact.status}"]
        if fact.message:
            parts.append(fact.message)
    else:
        parts = [fact.message or f"Stripe {fact.error_class}"]
        if fact.http_status is not None:
            parts.append(f"HTTP {fact.http_status}")
    details = [
        f"{label}={value}"
        for label, value in (("code", fact.code), ("decline_code", fact.decline_code))
        if value
    ]
    return " ".join(parts) + (f" ({', '.join(details)})" if details else "")


def _intent(status: str) -> Callable[[StripeFact], bool]:
    return lambda fact: isinstance(fact, StripeIntent) and fact.status == status


def _failure(*classes: str) -> Callable[[StripeFact], bool]:
    return lambda fact: isinstance(fact, StripeFailure) and fact.error_class in classes


def _charged(fact: StripeFact) -> GatewayAnswer:
    assert isinstance(fact, StripeIntent)
    return Charged(fact.latest_charge or fact.id)


def _pending(fact: StripeFact) -> GatewayAnswer:
    return Transient(
        TransientKind.PENDING_AT_GATEWAY,
        _error("payment_processing", _describe(fact) + ": not settled yet"),
        http_status=200,
    )


def _authentication_required(fact: StripeFact) -> GatewayAnswer:
    return Declined(
        _error(
            "authentication_required",
            _describe(fact) + ": the card asks for 3-D Secure, which an off-session charge "
            "cannot give",
        )
    )


def _declined(fact: StripeFact) -> GatewayAnswer:
    fallback = "canceled" if isinstance(fact, StripeIntent) and fact.status == "canceled" else ""
    code = fact.decline_code or fact.code or fallback or "card_declined"
    return Declined(_error(code, _describe(fact)))


def _idempotency_conflict(fact: StripeFact) -> GatewayAnswer:
    status = fact.http_status if isinstance(fact, StripeFailure) and fact.http_status else 400
    return Rejected(
        status,
        _error(
            "idempotency_conflict",
            _describe(fact) + ": Stripe holds this payment_id's key for other parameters",
        ),
        park_reason=ParkReason.INVALID_MESSAGE,
    )


def _should_not_retry(fact: StripeFact) -> bool:
    return _failure("APIError", "RateLimitError")(fact) and (
        isinstance(fact, StripeFailure) and fact.should_retry is False
    )


def _should_retry(fact: StripeFact) -> bool:
    return _failure("APIError", "InvalidRequestError")(fact) and (
        isinstance(fact, StripeFailure) and fact.should_retry is True
    )


def _rejected(fact: StripeFact) -> GatewayAnswer:
    assert isinstance(fact, StripeFailure)
    error = _error(fact.code or fact.error_type or "invalid_request", _describe(fact))
    return Rejected(fact.http_status or 400, error)


def _transient(kind: TransientKind, code: str) -> Callable[[StripeFact], GatewayAnswer]:
    def answer(fact: StripeFact) -> GatewayAnswer:
        assert isinstance(fact, StripeFailure)
        return Transient(
            kind,
            _error(fact.code or code, _describe(fact)),
            http_status=fact.http_status,
            retry_after=fact.retry_after,
        )

    return answer


_WIRE_KIND = {
    WireFault.NOT_SENT: TransientKind.CONNECT_FAILED,
    WireFault.TIMED_OUT: TransientKind.TIMEOUT,
    WireFault.DROPPED: TransientKind.CONNECTION,
}


def _network(fact: StripeFact) -> GatewayAnswer:
    assert isinstance(fact, StripeFailure)
    kind = _WIRE_KIND[fact.wire or WireFault.DROPPED]
    code = "gateway_timeout" if kind is TransientKind.TIMEOUT else "gateway_unreachable"
    return Transient(kind, _error(code, _describe(fact)))


def _server_error(fact: StripeFact) -> bool:
    return _failure("APIError")(fact) and (
        isinstance(fact, StripeFailure) and (fact.http_status or 500) >= 500
    )


def _unexpected(fact: StripeFact) -> GatewayAnswer:
    status = fact.http_status if isinstance(fact, StripeFailure) else 200
    return Transient(
        TransientKind.UNEXPECTED_ANSWER,
        _error("unexpected_answer", _describe(fact)),
        http_status=status,
    )


STRIPE_MAPPING: tuple[Row, ...] = (
    Row("succeeded", "PaymentIntent `succeeded`", "succeeded; charge id = `latest_charge`, "
        "else the PaymentIntent id", _intent("succeeded"), _charged),
    Row("processing", "PaymentIntent `processing`", "in doubt: transient "
        "`pending_at_gateway` (reconciled later)", _intent("processing"), _pending),
    Row("requires_action", "PaymentIntent `requires_action` (3-D Secure asked off-session)",
        "declined `authentication_required`", _intent("requires_action"),
        _authentication_required),
    Row("requires_payment_method", "PaymentIntent `requires_payment_method`",
        "declined with `last_payment_error`'s `decline_code`, else its `code`",
        _intent("requires_payment_method"), _declined),
    Row("canceled", "PaymentIntent `canceled`", "declined `canceled`", _intent("canceled"),
        _declined),
    Row("card_error", "`CardError` (402)", "declined with Stripe's `decline_code`, else `code`",
        _failure("CardError"), _declined),
    Row("idempotency_error", "`IdempotencyError` (same key, other parameters)",
        "parked `invalid_message`, code `idempotency_conflict`", _failure("IdempotencyError"),
        _idempotency_conflict),
    Row("should_retry_false", "`APIError` / `RateLimitError` with `Stripe-Should-Retry: false`",
        "rejected (parked `gateway_rejected`): Stripe says a retry cannot succeed",
        _should_not_retry, _rejected),
    Row("should_retry_true", "`APIError` / `InvalidRequestError` with `Stripe-Should-Retry: "
        "true` (e.g. 409, a concurrent request with the same key)", "transient `server_error`",
        _should_retry, _transient(TransientKind.SERVER_ERROR, "api_error")),
    Row("rate_limited", "`RateLimitError` (429)", "transient `rate_limited`, honouring "
        "`Retry-After`", _failure("RateLimitError"),
        _transient(TransientKind.RATE_LIMITED, "rate_limit")),
    Row("gateway_auth", "`AuthenticationError` (401) / `PermissionError` (403)",
        "transient `gateway_auth`: our key, retried, never parked as rejected",
        _failure("AuthenticationError", "PermissionError"),
        _transient(TransientKind.GATEWAY_AUTH, "gateway_auth")),
    Row("connection", "`APIConnectionError`", "transient: `connect_failed` when nothing was "
        "sent, else `timeout` / `connection_error` (in doubt)", _failure("APIConnectionError"),
        _network),
    Row("invalid_request", "other `InvalidRequestError` (400, 404)",
        "rejected (parked `gateway_rejected`)", _failure("InvalidRequestError"), _rejected),
    Row("server_error", "`APIError` 5xx", "transient `server_error` (in doubt), honouring "
        "`Retry-After`", _server_error, _transient(TransientKind.SERVER_ERROR, "api_error")),
    Row("unexpected", "anything else (another status, an unknown error class)",
        "transient `unexpected_answer` (in doubt)", lambda fact: True, _unexpected),
)  # fmt: skip
"""The mapping, first match wins. Rows are named so tests and the README can point at them."""


def classify(fact: StripeFact) -> tuple[Row, GatewayAnswer]:
    """The row ``fact`` falls under and the answer it gives."""
    for row in STRIPE_MAPPING:
        if row.matches(fact):
            return row, row.answer(fact)
    raise AssertionError("the last row matches everything")  # pragma: no cover


def answer_for(fact: StripeFact) -> GatewayAnswer:
    return classify(fact)[1]


def lookup_answer(fact: StripeFact) -> LookupAnswer:
    """Did Stripe charge? Read from the answer to an idempotent re-send of the same request.

    Charged -> charged. A decline, or a 4xx rejection (which Stripe does not execute), -> no
    charge. Anything transient, ``processing`` and an idempotency conflict (the key is bound
    to another request, whose fate this answer does not tell) -> cannot say now.
    """
    match answer_for(fact):
        case Charged(charge_id=charge_id):
            return LookupCharged(charge_id)
        case Declined():
            return LookupNoCharge()
        case Rejected(http_status=status, error=error, park_reason=reason):
            if reason is ParkReason.GATEWAY_REJECTED and 400 <= status < 500:
                return LookupNoCharge()
            return LookupUnavailable(error)
        case Transient(error=error, kind=kind, retry_after=retry_after):
            limited = kind is TransientKind.RATE_LIMITED
            return LookupUnavailable(error, limited, retry_after if limited else None)
    raise AssertionError(fact)  # pragma: no cover


def search_answer(intents: Sequence[StripeIntent]) -> LookupAnswer:
    """Did Stripe charge? Read from the PaymentIntents a search found for the payment_id.

    Any ``succeeded`` intent -> charged; any ``processing`` -> cannot say yet; none, or only
    failed ones -> no charge (given the search index is fresh enough: see the adapter).
    """
    for intent in intents:
        if intent.status == "succeeded":
            return LookupCharged(intent.latest_charge or intent.id)
    for intent in intents:
        if intent.status == "processing":
            return LookupUnavailable(
                _error("payment_processing", _describe(intent) + ": not settled yet")
            )
    return LookupNoCharge()
