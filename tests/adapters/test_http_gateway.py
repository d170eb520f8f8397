"""The HTTP gateway adapter: every answer and failure becomes a GatewayAnswer, never an error."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import respx

from processor.adapters.http_gateway import CONNECT_RETRIES, HttpGateway, default_transport
from processor.fake_gateway import FakeGatewayConfig, RunningGateway, start_fake_gateway
from retry.policy import Charged, Declined, Rejected, Transient, TransientKind
from schemas.payment import PaymentRequest
from tests.adapters.conftest import GATEWAY_BASE
from tests.support.raw_server import charge_against

PAN = "4111111111111111"
CONTRACT_FIELDS = {
    "amount",
    "currency",
    "payment_method",
    "merchant_id",
    "customer_id",
    "description",
    "metadata",
}


def make_request(**fields: Any) -> PaymentRequest:
    data: dict[str, Any] = {
        "payment_id": str(uuid.uuid4()),
        "amount": 1999,
        "currency": "EUR",
        "merchant_id": "m_123",
        "payment_method": "pm_card_visa",
        "customer_id": "c_42",
        "description": "Order 1001",
        "metadata": {"order_id": "1001", "note": "a b"},
    }
    data.update(fields)
    return PaymentRequest.model_validate(data)


def charges(router: respx.Router, **mock: Any) -> respx.Route:
    return router.post("/v1/charges").mock(**mock)


def error_body(code: str, message: str, kind: str = "card_error") -> dict[str, Any]:
    return {"error": {"type": kind, "code": code, "message": message}}


# ---- answers -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201])
async def test_succeeded_charge_is_charged(
    router: respx.Router, gateway: HttpGateway, status: int
) -> None:
    """A 200 or 201 with status succeeded is a Charged answer with the charge id."""
    charges(router, return_value=httpx.Response(status, json={"id": "ch_1", "status": "succeeded"}))
    assert await gateway.charge(make_request()) == Charged("ch_1")


@pytest.mark.parametrize(
    "body",
    [{"id": "ch_1", "status": "pending"}, {"status": "succeeded"}, {}, "not json"],
)
async def test_2xx_without_a_succeeded_charge_is_an_unexpected_answer(
    router: respx.Router, gateway: HttpGateway, body: Any
) -> None:
    """A 2xx that does not report a succeeded charge with an id is retried, not trusted."""
    response = (
        httpx.Response(200, text=body) if isinstance(body, str) else httpx.Response(200, json=body)
    )
    charges(router, return_value=response)
    answer = await gateway.charge(make_request())
    assert isinstance(answer, Transient)
    assert answer.kind is TransientKind.UNEXPECTED_ANSWER
    assert answer.http_status == 200


async def test_402_is_declined_with_the_gateway_code(
    router: respx.Router, gateway: HttpGateway
) -> None:
    """A 402 is a Declined answer carrying the gateway's error code and message."""
    body = error_body("insufficient_funds", "Your card has insufficient funds.")
    charges(router, return_value=httpx.Response(402, json=body))
    answer = await gateway.charge(make_request())
    assert isinstance(answer, Declined)
    assert answer.error.code == "insufficient_funds"
    assert answer.error.message == "Your card has insufficient funds."


@pytest.mark.parametrize("status", [400, 404, 409, 422])
async def test_request_errors_are_rejected(
    router: respx.Router, gateway: HttpGateway, status: int
) -> None:
    """400, 404, 409 and 422 are Rejected with the status: the request itself is wrong."""
    body = error_body("parameter_invalid", "amount is wrong", "invalid_request_error")
    charges(router, return_value=httpx.Response(status, json=body))
    answer = await gateway.charge(make_request())
    assert isinstance(answer, Rejected)
    assert answer.http_status == status
    assert answer.error.code == "parameter_invalid"


async def test_error_without_a_body_gets_a_generic_code(
    router: respx.Router, gateway: HttpGateway
) -> None:
    """An error status with no JSON body still yields a code and message naming the status."""
    charges(router, return_value=httpx.Response(422, text="nope"))
    answer = await gateway.charge(make_request())
    assert isinstance(answer, Rejected)
    assert answer.error.code == "http_422"
    assert "422" in answer.error.message


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_failures_are_transient_gateway_auth(
    router: respx.Router, gateway: HttpGateway, status: int
) -> None:
    """401 and 403 are a gateway outage of ours: transient gateway_auth, never rejected."""
    charges(router, return_value=httpx.Response(status, json=error_body("auth", "bad key")))
    answer = await gateway.charge(make_request())
    assert isinstance(answer, Transient)
    assert (answer.kind, answer.http_status) == (TransientKind.GATEWAY_AUTH, status)


@pytest.mark.parametrize(("header", "expected"), [("7", 7.0), ("0.5", 0.5), ("soon", None)])
async def test_429_is_rate_limited_with_retry_after(
    router: respx.Router, gateway: HttpGateway, header: str, expected: float | None
) -> None:
    """A 429 is transient rate_limited and carries the Retry-After seconds when numeric."""
    charges(router, return_value=httpx.Response(429, headers={"Retry-After": header}))
    answer = await gateway.charge(make_request())
    assert isinstance(answer, Transient)
    assert (answer.kind, answer.http_status, answer.retry_after) == (
        TransientKind.RATE_LIMITED,
        429,
        expected,
    )


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_are_transient(
    router: respx.Router, gateway: HttpGateway, status: int
) -> None:
    """5xx answers are transient server errors with their status."""
    route = charges(router, return_value=httpx.Response(status))
    answer = await gateway.charge(make_request())
    assert isinstance(answer, Transient)
    assert (answer.kind, answer.http_status) == (TransientKind.SERVER_ERROR, status)
    assert route.call_count == 1


# ---- transport failures ---------------------------------------------------------------------


async def test_timeout_is_transient_and_not_retried_in_process(
    router: respx.Router, gateway: HttpGateway
) -> None:
    """A read timeout (the charge may have happened) is reported once as a timeout."""
    route = charges(router, side_effect=httpx.ReadTimeout("too slow"))
    answer = await gateway.charge(make_request())
    assert isinstance(answer, Transient)
    assert answer.kind is TransientKind.TIMEOUT
    assert answer.error.code == "gateway_timeout"
    assert route.call_count == 1


async def test_connect_error_is_retried_in_process_then_transient(
    router: respx.Router, gateway: HttpGateway
) -> None:
    """A refused connection is retried a bounded number of times, then reported transient."""
    route = charges(router, side_effect=httpx.ConnectError("refused"))
    answer = await gateway.charge(make_request())
    assert isinstance(answer, Transient)
    assert answer.kind is TransientKind.CONNECT_FAILED
    assert route.call_count == 1 + CONNECT_RETRIES


async def test_connect_error_then_success_is_charged(
    router: respx.Router, gateway: HttpGateway
) -> None:
    """A connection refused once and then accepted ends in a charge within one call."""
    route = charges(
        router,
        side_effect=[
            httpx.ConnectError("refused"),
            httpx.Response(200, json={"id": "ch_2", "status": "succeeded"}),
        ],
    )
    assert await gateway.charge(make_request()) == Charged("ch_2")
    assert route.call_count == 2


async def test_dropped_connection_is_transient_and_not_retried_in_process(
    router: respx.Router, gateway: HttpGateway
) -> None:
    """A connection lost after sending is a transient connection error, tried only once."""
    route = charges(router, side_effect=httpx.RemoteProtocolError("server hung up"))
    answer = await gateway.charge(make_request())
    assert isinstance(answer, Transient)
    assert answer.kind is TransientKind.CONNECTION
    assert route.call_count == 1


# ---- what is sent ---------------------------------------------------------------------------


async def test_every_call_uses_payment_id_as_idempotency_key_and_the_contract_body(
    router: respx.Router, gateway: HttpGateway
) -> None:
    """Each attempt, in-process retries included, sends the same key and exactly SPEC's body."""
    route = charges(
        router,
        side_effect=[
            httpx.ConnectError("refused"),
            httpx.Response(200, json={"id": "ch_3", "status": "succeeded"}),
        ],
    )
    request = make_request()
    await gateway.charge(request)
    assert route.call_count == 2
    for call in route.calls:
        sent = call.request
        assert sent.method == "POST"
        assert sent.url == f"{GATEWAY_BASE}/v1/charges"
        assert sent.headers["Idempotency-Key"] == request.key
        assert sent.headers["Content-Type"] == "application/json"
        body = orjson.loads(sent.content)
        assert set(body) <= CONTRACT_FIELDS
        assert body == {
            "amount": 1999,
            "currency": "EUR",
            "payment_method": "pm_card_visa",
            "merchant_id": "m_123",
            "customer_id": "c_42",
            "description": "Order 1001",
            "metadata": {"order_id": "1001", "note": "a b"},
        }


async def test_optional_fields_are_left_out_when_absent(
    router: respx.Router, gateway: HttpGateway
) -> None:
    """A minimal request sends only the required contract fields (no nulls)."""
    route = charges(
        router, return_value=httpx.Response(200, json={"id": "c", "status": "succeeded"})
    )
    request = make_request(customer_id=None, description=None, metadata=None)
    await gateway.charge(request)
    assert set(orjson.loads(route.calls.last.request.content)) == {
        "amount",
        "currency",
        "payment_method",
        "merchant_id",
    }


# ---- redaction ------------------------------------------------------------------------------


async def test_card_numbers_in_gateway_errors_are_redacted(
    router: respx.Router, gateway: HttpGateway
) -> None:
    """A gateway error that echoes a card number is masked before it can be stored or parked."""
    body = error_body(f"code_{PAN}", f"card {PAN} was declined")
    charges(router, return_value=httpx.Response(402, json=body))
    answer = await gateway.charge(make_request())
    assert isinstance(answer, Declined)
    assert PAN not in answer.error.code
    assert PAN not in answer.error.message
    assert "[REDACTED-PAN]" in answer.error.message


async def test_card_numbers_in_transport_errors_are_redacted(
    router: respx.Router, gateway: HttpGateway
) -> None:
    """An exception text holding a card number is masked in the transient error."""
    charges(router, side_effect=httpx.ReadTimeout(f"timed out sending {PAN}"))
    answer = await gateway.charge(make_request())
    assert isinstance(answer, Transient)
    assert PAN not in answer.error.message


# ---- the default transport against real sockets ------------------------------------------------


@pytest.fixture
async def fake_gateway() -> AsyncIterator[RunningGateway]:
    running = await start_fake_gateway(FakeGatewayConfig(seed=3), port=0)
    yield running
    await running.stop()


async def test_default_transport_charges_the_fake_gateway_once_per_key(
    fake_gateway: RunningGateway,
) -> None:
    """Over the default transport the fake gateway charges once, then replays the answer."""
    client = HttpGateway(fake_gateway.url, 2.0)
    try:
        request = make_request()
        first = await client.charge(request)
        second = await client.charge(request)
        declined = await client.charge(make_request(amount=1402))
    finally:
        await client.aclose()
    assert isinstance(first, Charged)
    assert second == first
    assert fake_gateway.state.charge_count(request.key) == 1
    assert isinstance(declined, Declined)


async def test_default_transport_times_out_a_hanging_gateway_quickly(
    fake_gateway: RunningGateway,
) -> None:
    """A gateway that hangs 2 s is reported as a timeout after the 0.3 s budget, uncharged."""
    fake_gateway.state.update_config({"timeout_rate": 1.0, "hang_seconds": 2.0})
    client = HttpGateway(fake_gateway.url, 0.3)
    request = make_request()
    started = time.monotonic()
    try:
        answer = await client.charge(request)
    finally:
        await client.aclose()
    elapsed = time.monotonic() - started
    assert isinstance(answer, Transient)
    assert answer.kind is TransientKind.TIMEOUT
    assert elapsed < 1.5
    assert fake_gateway.state.charge_count(request.key) == 0


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_default_transport_reports_a_refused_connection_as_connect_failed() -> None:
    """A refused connection is a failed connect (nothing sent), not a timeout."""
    client = HttpGateway(f"http://127.0.0.1:{closed_port()}", 1.0)
    try:
        answer = await client.charge(make_request())
    finally:
        await client.aclose()
    assert isinstance(answer, Transient)
    assert answer.kind is TransientKind.CONNECT_FAILED
    assert answer.error.code == "gateway_unreachable"


class StartsAfterFirstRequest(httpx.AsyncBaseTransport):
    """The real default transport, with a fake gateway brought up once the first try failed."""

    def __init__(self, port: int) -> None:
        self.inner = default_transport(4)
        self.port = port
        self.requests = 0
        self.running: RunningGateway | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        try:
            return await self.inner.handle_async_request(request)
        finally:
            if self.running is None:
                self.running = await start_fake_gateway(FakeGatewayConfig(seed=1), port=self.port)

    async def aclose(self) -> None:
        await self.inner.aclose()
        if self.running is not None:
            await self.running.stop()


async def test_default_transport_retries_a_refused_connection_in_process() -> None:
    """A gateway refusing the first connect but up for the next charges within one call."""
    port = closed_port()
    transport = StartsAfterFirstRequest(port)
    client = HttpGateway(f"http://127.0.0.1:{port}", 1.0, transport=transport)
    try:
        answer = await client.charge(make_request())
    finally:
        await client.aclose()
    assert isinstance(answer, Charged)
    assert transport.requests == 2


async def test_default_transport_survives_a_malformed_http_answer() -> None:
    """Garbage instead of an HTTP response is a transient error, not an exception."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(b"garbage\r\n\r\n")
        await writer.drain()
        writer.close()

    answer = await charge_against(handle, make_request())
    assert isinstance(answer, Transient)
    assert answer.kind is TransientKind.CONNECTION
