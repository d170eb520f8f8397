"""The fake gateway's gateway-protection knobs over real loopback HTTP: faults that follow
payments or merchants, and a rate limit it enforces with 429 + Retry-After."""

from __future__ import annotations

import argparse
import uuid
from collections.abc import AsyncIterator
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
from processor.fake_gateway.faults import sticky_fails


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as http:
        yield http


async def started(**knobs: Any) -> RunningGateway:
    return await start_fake_gateway(FakeGatewayConfig(by_amount=False, **knobs), port=0)


async def charge(
    http: httpx.AsyncClient, gateway: RunningGateway, key: str, merchant: str = "m_1"
) -> httpx.Response:
    body = {"amount": 1999, "currency": "EUR", "payment_method": "pm_x", "merchant_id": merchant}
    return await http.post(gateway.url + "/v1/charges", json=body, headers={"Idempotency-Key": key})


async def test_payment_sticky_faults_fail_the_same_payments_on_every_attempt(
    client: httpx.AsyncClient,
) -> None:
    gateway = await started(sticky_failure_share=0.2)
    try:
        keys = [str(uuid.uuid4()) for _ in range(200)]
        failing = [k for k in keys if sticky_fails(k, 0.2)]
        assert 20 < len(failing) < 60
        for _ in range(2):
            for key in keys:
                answer = await charge(client, gateway, key)
                assert answer.status_code == (503 if key in failing else 200)
        assert gateway.state.charges == len(keys) - len(failing)
        stats = (await client.get(gateway.url + "/_stats?summary=1")).json()
        assert stats["protection"]["sticky_503"] == 2 * len(failing)
    finally:
        await gateway.stop()


async def test_merchant_sticky_faults_fail_every_charge_of_that_merchant(
    client: httpx.AsyncClient,
) -> None:
    gateway = await started()
    try:
        config = await client.post(gateway.url + "/_config", json={"failing_merchants": ["bad"]})
        assert config.status_code == 200
        assert (await charge(client, gateway, "k1", "bad")).status_code == 503
        assert (await charge(client, gateway, "k2", "good")).status_code == 200
        bad = await client.post(gateway.url + "/_config", json={"failing_merchants": "bad"})
        assert bad.status_code == 400
    finally:
        await gateway.stop()


async def test_the_rate_limit_answers_429_with_retry_after_above_the_rate(
    client: httpx.AsyncClient,
) -> None:
    """A burst well over the bucket gets 429s whose Retry-After says when a token is free;
    after that wait the next request is accepted."""
    gateway = await started(rate_limit=20.0, rate_limit_burst=0.25)
    try:
        answers = [await charge(client, gateway, f"k{i}") for i in range(10)]
        codes = [a.status_code for a in answers]
        assert codes[:5] == [200] * 5  # 20/s x 0.25 s
        assert 429 in codes
        limited = next(a for a in answers if a.status_code == 429)
        retry_after = float(limited.headers["Retry-After"])
        assert 0 < retry_after <= 0.05 + 1e-9
        stats = (await client.get(gateway.url + "/_stats?summary=1")).json()
        assert stats["protection"]["rate_limited"] == codes.count(429)
        assert stats["answers"]["429"] == codes.count(429)
    finally:
        await gateway.stop()


def test_command_line_flags_set_the_protection_knobs() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    ns = parser.parse_args(
        ["--sticky-failure-share", "0.2", "--failing-merchants", "a,b", "--rate-limit", "150"]
    )
    config = config_from_args(ns)
    assert config.sticky_failure_share == 0.2
    assert config.failing_merchants == ["a", "b"]
    assert config.rate_limit == 150.0
