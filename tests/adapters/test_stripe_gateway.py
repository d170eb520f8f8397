"""The Stripe adapter against respx fixtures of Stripe's documented answers.

Bodies and headers follow Stripe's API reference (the PaymentIntent object, the error
object, ``Idempotent-Replayed``, ``Stripe-Should-Retry``); every row of the mapping table is
reached through the real library here, and the requests Stripe would receive are asserted:
form encoding, the idempotency key, the metadata, and one HTTP request per attempt (the
library's own retries are off).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from processor.adapters.stripe_gateway import StripeGateway
from processor.config import ConfigError, load_settings
from retry.policy import (
    Charged,
    Declined,
    LookupCharged,
    LookupNoCharge,
    LookupUnavailable,
    Rejected,
    Transient,
    TransientKind,
)
from schemas.outcome import ParkReason
from schemas.payment import PaymentRequest

BASE = "http://stripe.test"
KEY = "sk_test_51PayprocSecretKeyThatMustNeverBeLogged0000"
# Stripe's library hands httpx its form body as ``data=<str>``, which httpx deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def make_request(**fields: Any) -> PaymentRequest:
    data: dict[str, Any] = {
        "payment_id": str(uuid.uuid4()),
        "amount": 1999,
        "currency": "EUR",
        "merchant_id": "m_123",
        "payment_method": "pm_card_visa",
        "customer_id": "c_42",
        "description": "Order 1001",
        "metadata": {"order_id": "1001"},
    }
    data.update(fields)
    return PaymentRequest.model_validate(data)


def intent(status: str, request: PaymentRequest | None = None, **fields: Any) -> dict[str, Any]:
    """A PaymentIntent as the API reference shows it (the fields payproc reads, and more)."""
    body: dict[str, Any] = {
        "id": "pi_3MtwBwLkdIwHu7ix28a3tqPa",
        "object": "payment_intent",
        "amount": request.amount if request else 1999,
        "amount_received": 1999 if status == "succeeded" else 0,
        "capture_method": "automatic",
        "client_secret": "pi_3MtwBwLkdIwHu7ix28a3tqPa_secret_YrKJUKribcBjcG8HVhfZluoGH",
        "confirmation_method": "automatic",
        "created": 1680800504,
        "currency": "eur",
        "last_payment_error": None,
        "latest_charge": "ch_3MtwBwLkdIwHu7ix28a3tqPa" if status == "succeeded" else None,
        "livemode": False,
        "metadata": {"payment_id": request.key} if request else {},
        "next_action": None,
        "payment_method": "pm_1MtwBwLkdIwHu7ixPZ1fYqbd",
        "status": status,
    }
    body.update(fields)
    return body


def error(type_: str, message: str, **fields: Any) -> dict[str, Any]:
    return {"error": {"type": type_, "message": message, **fields}}


def headers(**extra: str) -> dict[str, str]:
    return {"Request-Id": "req_ZnLhKs1xRB2Uyo", "Stripe-Version": "2024-06-20", **extra}


@pytest.fixture
def stripe_api() -> respx.MockRouter:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
async def gateway() -> AsyncIterator[StripeGateway]:
    client = StripeGateway(KEY, timeout=1.0, api_base=BASE)
    yield client
    await client.aclose()


def form(call: Any) -> dict[str, str]:
    request: httpx.Request = call.request
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    return {k: v[0] for k, v in parse_qs(request.content.decode(), strict_parsing=True).items()}


async def test_a_charge_is_one_form_encoded_create_and_confirm(
    stripe_api: respx.MockRouter, gateway: StripeGateway
) -> None:
    request = make_request(amount=1999, currency="EUR")
    route = stripe_api.post("/v1/payment_intents").respond(
        200, json=intent("succeeded", request), headers=headers(**{"Idempotency-Key": request.key})
    )
    answer = await gateway.charge(request, traceparent=TRACEPARENT)
    assert answer == Charged("ch_3MtwBwLkdIwHu7ix28a3tqPa")
    assert route.call_count == 1
    sent = route.calls.last.request
    assert sent.headers["Idempotency-Key"] == request.key
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.headers["traceparent"] == TRACEPARENT
    assert form(route.calls.last) == {
        "amount": "1999",
        "currency": "eur",
        "payment_method": "pm_card_visa",
        "confirm": "true",
        "off_session": "true",
        "automatic_payment_methods[enabled]": "true",
        "automatic_payment_methods[allow_redirects]": "never",
        "description": "Order 1001",
        "metadata[order_id]": "1001",
        "metadata[customer_id]": "c_42",
        "metadata[payment_id]": request.key,
        "metadata[merchant_id]": "m_123",
    }


async def test_a_zero_decimal_currency_is_sent_as_is(
    stripe_api: respx.MockRouter, gateway: StripeGateway
) -> None:
    request = make_request(amount=500, currency="JPY")
    route = stripe_api.post("/v1/payment_intents").respond(
        200, json=intent("succeeded", request, currency="jpy", amount=500), headers=headers()
    )
    assert isinstance(await gateway.charge(request), Charged)
    sent = form(route.calls.last)
    assert (sent["amount"], sent["currency"]) == ("500", "jpy")


@pytest.mark.parametrize(
    ("amount", "currency", "code"),
    [
        (49, "USD", "amount_too_small"),
        (10, "JPY", "amount_too_small"),
        (5125, "KWD", "invalid_amount_for_currency"),
        (550, "ISK", "invalid_amount_for_currency"),
        (100_000_000, "EUR", "amount_too_large"),
    ],
)
async def test_amounts_stripe_would_refuse_are_refused_before_any_call(
    stripe_api: respx.MockRouter, gateway: StripeGateway, amount: int, currency: str, code: str
) -> None:
    route = stripe_api.post("/v1/payment_intents").respond(200, json=intent("succeeded"))
    answer = await gateway.charge(make_request(amount=amount, currency=currency))
    assert isinstance(answer, Rejected)
    assert answer.error.code == code
    assert "before calling Stripe" in answer.error.message
    assert route.call_count == 0


CARD_DECLINED = error(
    "card_error",
    "Your card has insufficient funds.",
    code="card_declined",
    decline_code="insufficient_funds",
    doc_url="https://stripe.com/docs/error-codes/card-declined",
    charge="ch_3MtwBwLkdIwHu7ix0snN0B15",
    payment_intent=intent(
        "requires_payment_method",
        last_payment_error={"code": "card_declined", "decline_code": "insufficient_funds"},
    ),
)
IDEMPOTENCY = error(
    "idempotency_error",
    "Keys for idempotent requests can only be used with the same parameters they were first "
    "used with. Try using a key other than 'k' if you meant to execute a different request.",
)

ERROR_ROWS: list[tuple[str, int, dict[str, Any], dict[str, str], Any, Any]] = [
    # id, status, body, headers, expected type, expected kind / code
    ("card_error", 402, CARD_DECLINED, {}, Declined, "insufficient_funds"),
    ("idempotency_error", 400, IDEMPOTENCY, {}, Rejected, "idempotency_conflict"),
    (
        "invalid_request_404",
        404,
        error(
            "invalid_request_error",
            "No such PaymentMethod: 'pm_nope'",
            code="resource_missing",
            param="payment_method",
        ),
        {},
        Rejected,
        "resource_missing",
    ),
    (
        "invalid_request_400",
        400,
        error("invalid_request_error", "Missing required param: amount.", code="parameter_missing"),
        {},
        Rejected,
        "parameter_missing",
    ),
    (
        "rate_limited",
        429,
        error(
            "invalid_request_error",
            "Request rate limit exceeded. Learn more about rate limits here "
            "https://stripe.com/docs/rate-limits.",
            code="rate_limit",
        ),
        {"Retry-After": "3"},
        Transient,
        TransientKind.RATE_LIMITED,
    ),
    (
        "server_error",
        500,
        error("api_error", "An unknown error occurred"),
        {},
        Transient,
        TransientKind.SERVER_ERROR,
    ),
    (
        "server_error_should_retry_true",
        503,
        error("api_error", "An unknown error occurred"),
        {"Stripe-Should-Retry": "true"},
        Transient,
        TransientKind.SERVER_ERROR,
    ),
    (
        "server_error_should_retry_false",
        500,
        error("api_error", "An unknown error occurred"),
        {"Stripe-Should-Retry": "false"},
        Rejected,
        "api_error",
    ),
    (
        "concurrent_same_key",
        409,
        error(
            "idempotency_error",
            "There is currently another in-progress request using this Stripe API key and "
            "idempotency key. Please try again later.",
        ),
        {"Stripe-Should-Retry": "true"},
        Transient,
        TransientKind.SERVER_ERROR,
    ),
    (
        "authentication",
        401,
        error("invalid_request_error", "Invalid API Key provided: sk_test_****0000"),
        {},
        Transient,
        TransientKind.GATEWAY_AUTH,
    ),
    (
        "permission",
        403,
        error(
            "invalid_request_error",
            "The provided key 'rk_test_****0000' does not have the required permissions for "
            "this endpoint on account 'acct_1'.",
        ),
        {},
        Transient,
        TransientKind.GATEWAY_AUTH,
    ),
]


@pytest.mark.parametrize(
    ("status", "body", "extra", "kind", "detail"),
    [row[1:] for row in ERROR_ROWS],
    ids=[row[0] for row in ERROR_ROWS],
)
async def test_stripe_error_answers_map_to_payproc_answers(
    stripe_api: respx.MockRouter,
    gateway: StripeGateway,
    status: int,
    body: dict[str, Any],
    extra: dict[str, str],
    kind: type,
    detail: Any,
) -> None:
    route = stripe_api.post("/v1/payment_intents").respond(
        status, json=body, headers=headers(**extra)
    )
    answer = await gateway.charge(make_request())
    assert isinstance(answer, kind)
    if isinstance(answer, Transient):
        assert answer.kind is detail
        assert answer.http_status == status
    else:
        assert answer.error.code == detail  # type: ignore[union-attr]
    assert route.call_count == 1, "the library must not retry on its own"


async def test_retry_after_and_the_park_reason_travel_with_the_answer(
    stripe_api: respx.MockRouter, gateway: StripeGateway
) -> None:
    stripe_api.post("/v1/payment_intents").mock(
        side_effect=[
            httpx.Response(
                429, json=error("invalid_request_error", "slow down"), headers={"Retry-After": "7"}
            ),
            httpx.Response(400, json=IDEMPOTENCY, headers=headers()),
        ]
    )
    limited = await gateway.charge(make_request())
    assert isinstance(limited, Transient)
    assert limited.retry_after == 7.0
    conflict = await gateway.charge(make_request())
    assert isinstance(conflict, Rejected)
    assert conflict.park_reason is ParkReason.INVALID_MESSAGE


@pytest.mark.parametrize(
    ("status", "kind", "code"),
    [
        ("processing", Transient, "payment_processing"),
        ("requires_action", Declined, "authentication_required"),
        ("canceled", Declined, "canceled"),
    ],
)
async def test_payment_intent_states(
    stripe_api: respx.MockRouter, gateway: StripeGateway, status: str, kind: type, code: str
) -> None:
    request = make_request()
    stripe_api.post("/v1/payment_intents").respond(
        200, json=intent(status, request), headers=headers()
    )
    answer = await gateway.charge(request)
    assert isinstance(answer, kind)
    assert answer.error.code == code  # type: ignore[union-attr]
    if isinstance(answer, Transient):
        assert answer.kind is TransientKind.PENDING_AT_GATEWAY


async def test_a_failed_intent_carries_its_decline_code(
    stripe_api: respx.MockRouter, gateway: StripeGateway
) -> None:
    request = make_request()
    failed = intent(
        "requires_payment_method",
        request,
        last_payment_error={
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "do_not_honor",
            "message": "Your card was declined.",
        },
    )
    stripe_api.post("/v1/payment_intents").respond(200, json=failed, headers=headers())
    answer = await gateway.charge(request)
    assert isinstance(answer, Declined)
    assert answer.error.code == "do_not_honor"


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (httpx.ConnectError("connection refused"), TransientKind.CONNECT_FAILED),
        (httpx.ConnectTimeout("connect timed out"), TransientKind.CONNECT_FAILED),
        (httpx.ReadTimeout("read timed out"), TransientKind.TIMEOUT),
        (httpx.RemoteProtocolError("peer closed connection"), TransientKind.CONNECTION),
        (httpx.ReadError("connection reset"), TransientKind.CONNECTION),
    ],
)
async def test_network_faults_say_whether_the_request_may_have_reached_stripe(
    stripe_api: respx.MockRouter, gateway: StripeGateway, fault: Exception, kind: TransientKind
) -> None:
    route = stripe_api.post("/v1/payment_intents").mock(side_effect=fault)
    answer = await gateway.charge(make_request())
    assert isinstance(answer, Transient)
    assert answer.kind is kind
    assert route.call_count == 1, "the library must not retry on its own"


async def test_an_idempotent_replay_returns_the_stored_charge(
    stripe_api: respx.MockRouter, gateway: StripeGateway
) -> None:
    request = make_request()
    stored = intent("succeeded", request)
    route = stripe_api.post("/v1/payment_intents").mock(
        side_effect=[
            httpx.ReadTimeout("answer lost"),
            httpx.Response(
                200,
                json=stored,
                headers=headers(**{"Idempotent-Replayed": "true", "Idempotency-Key": request.key}),
            ),
        ]
    )
    first = await gateway.charge(request)
    assert isinstance(first, Transient)
    assert first.kind is TransientKind.TIMEOUT
    assert await gateway.charge(request) == Charged("ch_3MtwBwLkdIwHu7ix28a3tqPa")
    one, two = route.calls
    assert one.request.headers["Idempotency-Key"] == two.request.headers["Idempotency-Key"]
    assert one.request.content == two.request.content, "a replay must send the same parameters"


async def test_a_replayed_processing_answer_is_read_again_as_it_is_now(
    stripe_api: respx.MockRouter, gateway: StripeGateway
) -> None:
    request = make_request(payment_method="pm_sepa_debit")
    stripe_api.post("/v1/payment_intents").respond(
        200, json=intent("processing", request), headers=headers(**{"Idempotent-Replayed": "true"})
    )
    current = stripe_api.get("/v1/payment_intents/pi_3MtwBwLkdIwHu7ix28a3tqPa").respond(
        200, json=intent("succeeded", request), headers=headers()
    )
    assert await gateway.charge(request) == Charged("ch_3MtwBwLkdIwHu7ix28a3tqPa")
    assert current.call_count == 1


async def test_a_fresh_processing_answer_is_not_read_again(
    stripe_api: respx.MockRouter, gateway: StripeGateway
) -> None:
    request = make_request()
    stripe_api.post("/v1/payment_intents").respond(
        200, json=intent("processing", request), headers=headers()
    )
    current = stripe_api.get("/v1/payment_intents/pi_3MtwBwLkdIwHu7ix28a3tqPa").respond(
        200, json=intent("succeeded", request)
    )
    answer = await gateway.charge(request)
    assert isinstance(answer, Transient)
    assert current.call_count == 0


async def test_lookup_in_the_window_is_the_idempotent_resend(
    stripe_api: respx.MockRouter, gateway: StripeGateway
) -> None:
    request = make_request()
    route = stripe_api.post("/v1/payment_intents").mock(
        side_effect=[
            httpx.RemoteProtocolError("peer closed connection"),
            httpx.Response(
                200, json=intent("succeeded", request), headers={"Idempotent-Replayed": "true"}
            ),
        ]
    )
    search = stripe_api.get("/v1/payment_intents/search").respond(200, json={"data": []})
    assert isinstance(await gateway.charge(request), Transient)
    assert await gateway.lookup(request.key) == LookupCharged("ch_3MtwBwLkdIwHu7ix28a3tqPa")
    one, two = route.calls
    assert two.request.headers["Idempotency-Key"] == request.key
    assert one.request.content == two.request.content
    assert search.call_count == 0


async def test_lookup_resend_that_finds_a_decline_is_no_charge(
    stripe_api: respx.MockRouter, gateway: StripeGateway
) -> None:
    request = make_request()
    stripe_api.post("/v1/payment_intents").mock(
        side_effect=[
            httpx.ReadTimeout("lost"),
            httpx.Response(402, json=CARD_DECLINED, headers={"Idempotent-Replayed": "true"}),
        ]
    )
    await gateway.charge(request)
    assert await gateway.lookup(request.key) == LookupNoCharge()


def search_result(*intents: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "search_result",
        "url": "/v1/payment_intents/search",
        "has_more": False,
        "next_page": None,
        "data": list(intents),
    }


async def test_lookup_outside_the_window_searches_by_payment_id(
    stripe_api: respx.MockRouter, gateway: StripeGateway
) -> None:
    request = make_request()
    search = stripe_api.get("/v1/payment_intents/search").mock(
        side_effect=[
            httpx.Response(200, json=search_result(intent("succeeded", request))),
            httpx.Response(200, json=search_result()),
            httpx.Response(500, json=error("api_error", "An unknown error occurred")),
        ]
    )
    assert await gateway.lookup(request.key) == LookupCharged("ch_3MtwBwLkdIwHu7ix28a3tqPa")
    assert await gateway.lookup(request.key) == LookupNoCharge()
    assert isinstance(await gateway.lookup(request.key), LookupUnavailable)
    query = search.calls[0].request.url.params["query"]
    assert query == f"metadata['payment_id']:'{request.key}'"


async def test_lookup_past_the_idempotency_ttl_searches_even_for_a_known_request(
    stripe_api: respx.MockRouter,
) -> None:
    expired = StripeGateway(KEY, timeout=1.0, api_base=BASE, idempotency_ttl=1e-9)
    try:
        request = make_request()
        create = stripe_api.post("/v1/payment_intents").mock(side_effect=httpx.ReadTimeout("lost"))
        stripe_api.get("/v1/payment_intents/search").respond(200, json=search_result())
        await expired.charge(request)
        assert await expired.lookup(request.key) == LookupNoCharge()
        assert create.call_count == 1
    finally:
        await expired.aclose()


async def test_refused_credentials_log_one_line_for_the_operator_without_the_key(
    stripe_api: respx.MockRouter, gateway: StripeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    stripe_api.post("/v1/payment_intents").respond(
        401, json=error("invalid_request_error", f"Invalid API Key provided: {KEY}")
    )
    with caplog.at_level(logging.DEBUG):
        await gateway.charge(make_request())
        await gateway.charge(make_request())
    lines = [r.getMessage() for r in caplog.records if r.name == "payproc.stripe"]
    assert len(lines) == 1, "one line per interval, not one per payment"
    assert "PAYPROC_STRIPE_API_KEY" in lines[0]
    assert "retried" in lines[0]
    assert all(KEY not in r.getMessage() for r in caplog.records)
    assert KEY not in repr(gateway)


def test_stripe_needs_its_key_and_never_shows_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYPROC_GATEWAY", "stripe")
    monkeypatch.delenv("PAYPROC_STRIPE_API_KEY", raising=False)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    message = str(refused.value)
    assert "PAYPROC_STRIPE_API_KEY" in message
    assert "\n" not in message
    monkeypatch.setenv("PAYPROC_STRIPE_API_KEY", KEY)
    settings = load_settings()
    assert KEY not in repr(settings)
    assert KEY not in str(settings.model_dump())
    monkeypatch.setenv("PAYPROC_GATEWAY", "payproc")
    monkeypatch.delenv("PAYPROC_STRIPE_API_KEY")
    assert load_settings().gateway == "payproc"


async def test_the_factory_builds_the_selected_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    from processor import logs
    from processor.adapters.gateway_factory import (
        STRIPE_LIVE_RATE_LIMIT,
        STRIPE_TEST_RATE_LIMIT,
        build_gateway,
        default_rate_limit,
    )
    from processor.adapters.http_gateway import HttpGateway

    monkeypatch.delenv("PAYPROC_GATEWAY", raising=False)
    plain = build_gateway(load_settings())
    assert isinstance(plain, HttpGateway)
    await plain.aclose()
    assert default_rate_limit(load_settings()) is None

    settings = load_settings(gateway="stripe", stripe_api_key=KEY, stripe_api_base=BASE)
    adapter = build_gateway(settings)
    try:
        assert isinstance(adapter, StripeGateway)
        assert logs.scrub(f"key={KEY}") == "key=[REDACTED]"
    finally:
        await adapter.aclose()
    assert default_rate_limit(settings) == STRIPE_TEST_RATE_LIMIT
    live = load_settings(gateway="stripe", stripe_api_key="sk_live_x")
    assert default_rate_limit(live) == STRIPE_LIVE_RATE_LIMIT
