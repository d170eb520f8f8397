"""What the HTTP adapter says happened on the wire, and the charge lookup, end to end.

The policy decides what is in doubt from these facts, so each one must be reported right:
nothing sent (``CONNECT_FAILED``), sent without an answer (``TIMEOUT``), dropped mid-request
(``CONNECTION``); and the lookup turns the gateway's list into charged / no charge / cannot say.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import respx

from processor.adapters.gateway_lookup import interpret_lookup
from processor.adapters.http_gateway import HttpGateway, wire_failure
from processor.fake_gateway import FakeGatewayConfig, RunningGateway, start_fake_gateway
from retry.policy import (
    Charged,
    LookupCharged,
    LookupNoCharge,
    LookupUnavailable,
    Transient,
    TransientKind,
    in_doubt,
)
from schemas.payment import PaymentRequest
from tests.support.raw_server import charge_against


def make_request(amount: int = 1999) -> PaymentRequest:
    return PaymentRequest.model_validate(
        {
            "payment_id": str(uuid.uuid4()),
            "amount": amount,
            "currency": "EUR",
            "merchant_id": "m_1",
            "payment_method": "pm_card_visa",
        }
    )


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (httpx.ConnectError("refused"), TransientKind.CONNECT_FAILED),
        (httpx.ConnectTimeout("slow connect"), TransientKind.CONNECT_FAILED),
        (httpx.PoolTimeout("no free connection"), TransientKind.CONNECT_FAILED),
        (httpx.ReadTimeout("no answer"), TransientKind.TIMEOUT),
        (httpx.WriteTimeout("stuck writing"), TransientKind.TIMEOUT),
        (TimeoutError(), TransientKind.TIMEOUT),
        (httpx.ReadError("reset"), TransientKind.CONNECTION),
        (httpx.RemoteProtocolError("server hung up"), TransientKind.CONNECTION),
        (httpx.WriteError("broken pipe"), TransientKind.CONNECTION),
    ],
)
def test_each_transport_error_is_reported_as_what_happened(
    exc: Exception, kind: TransientKind
) -> None:
    """Connect-phase errors mean nothing was sent; everything later may have been delivered."""
    assert wire_failure(exc) is kind


@pytest.mark.parametrize(
    ("exc", "kind", "doubt"),
    [
        (httpx.ConnectTimeout("slow"), TransientKind.CONNECT_FAILED, False),
        (httpx.ReadTimeout("slow"), TransientKind.TIMEOUT, True),
        (httpx.ReadError("reset"), TransientKind.CONNECTION, True),
    ],
)
async def test_charge_reports_the_wire_failure_and_the_policy_judges_it(
    router: respx.Router, gateway: HttpGateway, exc: Exception, kind: TransientKind, doubt: bool
) -> None:
    """The adapter's kind feeds ``in_doubt``: a connect timeout is safe, a read error is not."""
    router.post("/v1/charges").mock(side_effect=exc)
    answer = await gateway.charge(make_request())
    assert isinstance(answer, Transient)
    assert answer.kind is kind
    assert in_doubt(answer) is doubt


@pytest.mark.parametrize(
    ("status", "doubt"), [(500, True), (502, True), (504, True), (429, False), (401, False)]
)
async def test_http_error_statuses_are_in_doubt_only_when_a_proxy_may_hide_a_charge(
    router: respx.Router, gateway: HttpGateway, status: int, doubt: bool
) -> None:
    """A 5xx (maybe a proxy's) is in doubt; 429 and 401 are refusals before any charge."""
    router.post("/v1/charges").mock(return_value=httpx.Response(status, json={}))
    answer = await gateway.charge(make_request())
    assert isinstance(answer, Transient)
    assert in_doubt(answer) is doubt


# ---- lookup ---------------------------------------------------------------------------------


async def test_lookup_sends_the_payment_id_as_the_idempotency_key_query(
    router: respx.Router, gateway: HttpGateway
) -> None:
    """``GET /v1/charges?idempotency_key=<payment_id>``; a succeeded charge is ``charged``."""
    route = router.get("/v1/charges").mock(
        return_value=httpx.Response(
            200, json={"object": "list", "data": [{"id": "ch_1", "status": "succeeded"}]}
        )
    )
    assert await gateway.lookup("pay-1") == LookupCharged("ch_1")
    assert route.calls.last.request.url.params["idempotency_key"] == "pay-1"


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, b'{"object":"list","data":[]}', LookupNoCharge),
        (200, b'{"object":"list","data":[{"id":"ch_f","status":"failed"}]}', LookupNoCharge),
        (
            200,
            b'{"object":"list","data":[{"id":"ch_f","status":"failed"},'
            b'{"id":"ch_s","status":"succeeded"}]}',
            LookupCharged,
        ),
        (200, b'{"object":"list","data":[{"id":"ch_p","status":"pending"}]}', LookupUnavailable),
        (200, b"<html>proxy</html>", LookupUnavailable),
        (200, b'{"data":[]}', LookupUnavailable),
        (429, b"{}", LookupUnavailable),
        (500, b"{}", LookupUnavailable),
        (503, b'{"object":"list","data":[]}', LookupUnavailable),
        (404, b"{}", LookupUnavailable),
    ],
)
def test_lookup_answers_are_read_strictly(status: int, body: bytes, expected: type) -> None:
    """Only a readable list says "no charge"; anything unreadable or pending cannot say."""
    assert isinstance(interpret_lookup(status, body), expected)


def test_a_429_on_a_lookup_is_marked_rate_limited_with_its_retry_after() -> None:
    """The worker's rate limiter slows down on a refused lookup as on a refused charge."""
    limited = interpret_lookup(429, b"{}", "1.5")
    assert isinstance(limited, LookupUnavailable)
    assert (limited.rate_limited, limited.retry_after) == (True, 1.5)
    down = interpret_lookup(503, b"{}", "1.5")
    assert isinstance(down, LookupUnavailable)
    assert not down.rate_limited


@pytest.mark.parametrize(
    "exc", [httpx.ReadTimeout("slow"), httpx.ConnectError("refused"), httpx.ReadError("reset")]
)
async def test_lookup_network_trouble_is_unavailable_never_raised(
    router: respx.Router, gateway: HttpGateway, exc: Exception
) -> None:
    router.get("/v1/charges").mock(side_effect=exc)
    assert isinstance(await gateway.lookup("pay-1"), LookupUnavailable)


# ---- against the fake gateway over the real transport ---------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[RunningGateway]:
    running = await start_fake_gateway(FakeGatewayConfig(seed=3, hang_seconds=5.0))
    yield running
    await running.stop()


async def test_charge_then_lost_answer_is_a_timeout_and_the_lookup_finds_the_charge(
    fake: RunningGateway,
) -> None:
    """The fake charges, then hangs: the adapter times out, the lookup sees the ledger's charge."""
    fake.state.update_config({"charge_then_timeout_rate": 1.0})
    client = HttpGateway(fake.url, 0.3)
    request = make_request()
    try:
        answer = await client.charge(request)
        assert isinstance(answer, Transient)
        assert answer.kind is TransientKind.TIMEOUT
        assert in_doubt(answer)
        [charge_id] = fake.state.charge_ids[request.key]
        assert await client.lookup(request.key) == LookupCharged(charge_id)
    finally:
        await client.aclose()


async def test_lookup_of_a_never_charged_key_is_no_charge_and_the_knob_makes_it_fail(
    fake: RunningGateway,
) -> None:
    client = HttpGateway(fake.url, 1.0)
    try:
        assert await client.lookup(str(uuid.uuid4())) == LookupNoCharge()
        fake.state.update_config({"lookup_failure_rate": 1.0})
        assert isinstance(await client.lookup(str(uuid.uuid4())), LookupUnavailable)
        assert fake.state.lookups == 2
        fake.state.update_config({"lookup_failure_rate": 0.0})
        request = make_request()
        charged = await client.charge(request)
        assert isinstance(charged, Charged)
        assert await client.lookup(request.key) == LookupCharged(charged.charge_id)
    finally:
        await client.aclose()


async def test_a_server_that_drops_the_connection_mid_request_is_a_connection_error() -> None:
    """The request reached the server, which hung up without answering: in doubt."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.transport.abort()

    answer = await charge_against(handle, make_request())
    assert isinstance(answer, Transient)
    assert answer.kind is TransientKind.CONNECTION
    assert in_doubt(answer)
