"""The bundled fake gateway, spoken to over real loopback HTTP."""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from processor.fake_gateway import (
    FakeGatewayConfig,
    RunningGateway,
    add_arguments,
    config_from_args,
    start_fake_gateway,
)

StartGateway = Callable[..., Awaitable[RunningGateway]]


@pytest.fixture
async def start_gateway() -> AsyncIterator[StartGateway]:
    """Start gateways on free loopback ports and stop them all afterwards."""
    running: list[RunningGateway] = []

    async def start(**knobs: Any) -> RunningGateway:
        gateway = await start_fake_gateway(FakeGatewayConfig(**knobs), port=0)
        running.append(gateway)
        return gateway

    yield start
    for gateway in running:
        await gateway.stop()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as http:
        yield http


def charge_body(amount: Any = 1999, **extra: Any) -> dict[str, Any]:
    return {
        "amount": amount,
        "currency": "EUR",
        "payment_method": "pm_card_visa",
        "merchant_id": "m_123",
        **extra,
    }


async def charge(
    http: httpx.AsyncClient,
    gateway: RunningGateway,
    key: str | None,
    body: Any = None,
    **kwargs: Any,
) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return await http.post(
        f"{gateway.url}/v1/charges",
        json=charge_body() if body is None else body,
        headers=headers,
        **kwargs,
    )


async def stats(http: httpx.AsyncClient, gateway: RunningGateway) -> dict[str, Any]:
    response = await http.get(f"{gateway.url}/_stats")
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def new_key() -> str:
    return str(uuid.uuid4())


async def test_success_is_recorded_in_the_ledger(
    start_gateway: StartGateway, client: httpx.AsyncClient
) -> None:
    """A valid charge answers 200 succeeded with a ch_ id and is counted once in the ledger."""
    gateway = await start_gateway()
    key = new_key()
    response = await charge(client, gateway, key)
    assert response.status_code == 200
    body = response.json()
    assert body["id"].startswith("ch_")
    assert body["status"] == "succeeded"
    assert (body["amount"], body["currency"], body["idempotency_key"]) == (1999, "EUR", key)
    assert "payment_method" not in body
    snapshot = await stats(client, gateway)
    assert snapshot["requests"] == 1
    assert snapshot["charges"] == 1
    assert snapshot["charged_keys"] == 1
    assert snapshot["charges_by_key"] == {key: 1}
    assert snapshot["double_charged"] == []
    assert snapshot["answers"] == {"200": 1}
    assert gateway.state.charge_count(key) == 1
    assert gateway.state.charge_ids[key] == [body["id"]]


async def test_same_key_replays_the_first_answer_and_charges_once(
    start_gateway: StartGateway, client: httpx.AsyncClient
) -> None:
    """A second request with the same key gets the identical first answer and no new charge."""
    gateway = await start_gateway()
    key = new_key()
    first = await charge(client, gateway, key)
    second = await charge(client, gateway, key)
    assert second.status_code == first.status_code == 200
    assert second.content == first.content
    snapshot = await stats(client, gateway)
    assert snapshot["requests"] == 2
    assert snapshot["charges"] == 1
    assert snapshot["charges_by_key"] == {key: 1}


async def test_concurrent_same_key_requests_charge_once(
    start_gateway: StartGateway, client: httpx.AsyncClient
) -> None:
    """Ten simultaneous requests with one key all get the same charge and it is made once."""
    gateway = await start_gateway(latency=0.02)
    key = new_key()
    responses = await asyncio.gather(*(charge(client, gateway, key) for _ in range(10)))
    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["id"] for r in responses}) == 1
    snapshot = await stats(client, gateway)
    assert snapshot["requests"] == 10
    assert snapshot["charges"] == 1
    assert snapshot["double_charged"] == []


async def test_decline_by_amount_is_stored_and_repeated(
    start_gateway: StartGateway, client: httpx.AsyncClient
) -> None:
    """An amount ending in 402 is declined, and the decline is replayed for the same key."""
    gateway = await start_gateway()
    key = new_key()
    first = await charge(client, gateway, key, charge_body(1402))
    assert first.status_code == 402
    assert first.json() == {
        "error": {
            "type": "card_error",
            "code": "card_declined",
            "message": "Your card was declined.",
        }
    }
    again = await charge(client, gateway, key, charge_body(1999))
    assert again.status_code == 402
    assert again.content == first.content
    snapshot = await stats(client, gateway)
    assert snapshot["charges"] == 0
    assert snapshot["answers"] == {"402": 2}


@pytest.mark.parametrize("status", [404, 409, 422])
async def test_rejections_by_amount_are_stored(
    start_gateway: StartGateway, client: httpx.AsyncClient, status: int
) -> None:
    """Amounts ending in 404, 409 or 422 are final rejections replayed for the same key."""
    gateway = await start_gateway()
    key = new_key()
    first = await charge(client, gateway, key, charge_body(2000 + status))
    assert first.status_code == status
    assert first.json()["error"]["type"] == "invalid_request_error"
    again = await charge(client, gateway, key, charge_body(1999))
    assert again.status_code == status
    assert (await stats(client, gateway))["charges"] == 0


@pytest.mark.parametrize("status", [400, 401, 403])
async def test_non_final_answers_by_amount_are_not_stored(
    start_gateway: StartGateway, client: httpx.AsyncClient, status: int
) -> None:
    """Amounts ending in 400, 401 or 403 store nothing, so a corrected retry with the key works."""
    gateway = await start_gateway()
    key = new_key()
    first = await charge(client, gateway, key, charge_body(1000 + status))
    assert first.status_code == status
    retry = await charge(client, gateway, key, charge_body(1999))
    assert retry.status_code == 200
    assert retry.json()["amount"] == 1999
    snapshot = await stats(client, gateway)
    assert snapshot["charges_by_key"] == {key: 1}


async def test_by_amount_can_be_switched_off(
    start_gateway: StartGateway, client: httpx.AsyncClient
) -> None:
    """With by_amount off an amount ending in 402 is charged like any other."""
    gateway = await start_gateway(by_amount=False)
    response = await charge(client, gateway, new_key(), charge_body(1402))
    assert response.status_code == 200


async def test_invalid_requests_are_400_and_not_stored(
    start_gateway: StartGateway, client: httpx.AsyncClient
) -> None:
    """A missing key or a bad body is a 400 invalid_request_error that stores nothing."""
    gateway = await start_gateway()
    missing = await charge(client, gateway, None)
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "missing_idempotency_key"

    key = new_key()
    for bad in (
        charge_body(amount=-5),
        charge_body(amount="12"),
        charge_body(currency="eur"),
        {k: v for k, v in charge_body().items() if k != "merchant_id"},
        charge_body(metadata={"n": 1}),
        [1, 2],
    ):
        response = await charge(client, gateway, key, bad)
        assert response.status_code == 400, bad
        assert response.json()["error"]["type"] == "invalid_request_error"
    not_json = await client.post(
        f"{gateway.url}/v1/charges", content=b"{nope", headers={"Idempotency-Key": key}
    )
    assert not_json.status_code == 400

    fixed = await charge(client, gateway, key)
    assert fixed.status_code == 200
    assert (await stats(client, gateway))["charges"] == 1


async def test_card_numbers_are_refused_and_never_echoed(
    start_gateway: StartGateway, client: httpx.AsyncClient
) -> None:
    """A payment_method that looks like a card number is refused without echoing it."""
    gateway = await start_gateway()
    pan = "4242 4242 4242 4242"
    response = await charge(client, gateway, new_key(), charge_body(payment_method=pan))
    assert response.status_code == 400
    assert "4242" not in response.text
    assert "4242" not in (await client.get(f"{gateway.url}/_stats")).text


async def test_failure_rate_gives_503_without_charging(
    start_gateway: StartGateway, client: httpx.AsyncClient
) -> None:
    """With failure_rate=1 every request is a 503 and nothing is charged or stored."""
    gateway = await start_gateway(failure_rate=1.0)
    key = new_key()
    for _ in range(3):
        response = await charge(client, gateway, key)
        assert response.status_code == 503
        assert response.json()["error"]["type"] == "api_error"
    snapshot = await stats(client, gateway)
    assert snapshot["charges"] == 0
    assert snapshot["answers"] == {"503": 3}
    assert key not in gateway.state.stored


async def test_rate_limit_gives_429_with_retry_after(
    start_gateway: StartGateway, client: httpx.AsyncClient
) -> None:
    """With rate_limit_rate=1 requests get a 429 carrying Retry-After and nothing is charged."""
    gateway = await start_gateway(rate_limit_rate=1.0, retry_after=2)
    response = await charge(client, gateway, new_key())
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert (await stats(client, gateway))["charges"] == 0


async def test_charge_then_timeout_charges_and_a_retry_gets_the_same_charge(
    start_gateway: StartGateway, client: httpx.AsyncClient
) -> None:
    """A charge whose answer hangs past the client's timeout is still made once and replayed."""
    gateway = await start_gateway(charge_then_timeout_rate=1.0, hang_seconds=1.0)
    key = new_key()
    with pytest.raises(httpx.TimeoutException):
        await charge(client, gateway, key, timeout=0.2)
    snapshot = await stats(client, gateway)
    assert snapshot["charges_by_key"] == {key: 1}
    (charge_id,) = gateway.state.charge_ids[key]

    started = time.monotonic()
    retry = await charge(client, gateway, key, timeout=0.5)
    assert time.monotonic() - started < 0.5
    assert retry.status_code == 200
    assert retry.json()["id"] == charge_id
    assert (await stats(client, gateway))["charges"] == 1


async def test_timeout_before_charge_charges_nothing(
    start_gateway: StartGateway, client: httpx.AsyncClient
) -> None:
    """With timeout_rate=1 the gateway hangs, answers 504 and charges nothing."""
    gateway = await start_gateway(timeout_rate=1.0, hang_seconds=0.3)
    key = new_key()
    started = time.monotonic()
    response = await charge(client, gateway, key)
    assert time.monotonic() - started >= 0.25
    assert response.status_code == 504
    snapshot = await stats(client, gateway)
    assert snapshot["charges"] == 0
    assert key not in gateway.state.stored


async def test_outage_is_toggled_at_runtime(
    start_gateway: StartGateway, client: httpx.AsyncClient
) -> None:
    """POST /_config switches an outage on (503, no charge) and off (the same key then charges)."""
    gateway = await start_gateway()
    on = await client.post(f"{gateway.url}/_config", json={"outage": True})
    assert on.status_code == 200
    assert on.json()["outage"] is True
    key = new_key()
    assert (await charge(client, gateway, key)).status_code == 503
    assert (await stats(client, gateway))["charges"] == 0

    off = await client.post(f"{gateway.url}/_config", json={"outage": False})
    assert off.json()["outage"] is False
    assert (await charge(client, gateway, key)).status_code == 200
    snapshot = await stats(client, gateway)
    assert snapshot["charges"] == 1
    assert snapshot["config"]["outage"] is False


@pytest.mark.parametrize(
    "payload",
    [
        {"no_such_knob": 1},
        {"failure_rate": 1.5},
        {"latency": 0.5, "failure_rate": 1.5},
        {"rate_limit_rate": -0.1},
        {"latency": "fast"},
        {"outage": "yes"},
        {"hang_seconds": -1},
        [1],
    ],
)
async def test_bad_config_is_400_and_changes_nothing(
    start_gateway: StartGateway, client: httpx.AsyncClient, payload: Any
) -> None:
    """An unknown knob or a bad value is refused with a 400 message and the config is kept."""
    gateway = await start_gateway()
    before = (await stats(client, gateway))["config"]
    response = await client.post(f"{gateway.url}/_config", json=payload)
    assert response.status_code == 400
    assert response.json()["error"]["message"]
    assert (await stats(client, gateway))["config"] == before


async def test_reset_clears_ledger_and_stored_answers(
    start_gateway: StartGateway, client: httpx.AsyncClient
) -> None:
    """POST /_reset forgets charges and stored answers, so the same key charges anew."""
    gateway = await start_gateway()
    key = new_key()
    first = await charge(client, gateway, key)
    reset = await client.post(f"{gateway.url}/_reset")
    assert reset.status_code == 200
    snapshot = await stats(client, gateway)
    assert (snapshot["requests"], snapshot["charges"], snapshot["charges_by_key"]) == (0, 0, {})
    assert snapshot["answers"] == {}
    second = await charge(client, gateway, key)
    assert second.status_code == 200
    assert second.json()["id"] != first.json()["id"]


async def test_healthz(start_gateway: StartGateway, client: httpx.AsyncClient) -> None:
    """GET /healthz answers 200 ok."""
    gateway = await start_gateway()
    response = await client.get(f"{gateway.url}/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_seeded_faults_are_reproducible(
    start_gateway: StartGateway, client: httpx.AsyncClient
) -> None:
    """Two gateways with the same seed inject the same sequence of faults."""
    sequences = []
    for _ in range(2):
        gateway = await start_gateway(failure_rate=0.5, seed=7)
        sequences.append(
            [(await charge(client, gateway, new_key())).status_code for _ in range(20)]
        )
    assert sequences[0] == sequences[1]
    assert set(sequences[0]) == {200, 503}


def test_flags_build_a_validated_config() -> None:
    """The CLI flags map to the config, and an out-of-range rate exits naming the flag."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    ns = parser.parse_args(
        [
            "--failure-rate",
            "0.25",
            "--retry-after",
            "3",
            "--outage",
            "--no-by-amount",
            "--seed",
            "9",
            "--latency",
            "0.05",
        ]
    )
    assert (ns.host, ns.port) == ("127.0.0.1", 8081)
    config = config_from_args(ns)
    assert config == FakeGatewayConfig(
        failure_rate=0.25, retry_after=3.0, outage=True, by_amount=False, seed=9, latency=0.05
    )
    with pytest.raises(SystemExit, match="--charge-then-timeout-rate"):
        config_from_args(parser.parse_args(["--charge-then-timeout-rate", "2"]))
