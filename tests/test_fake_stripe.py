"""The local Stripe-speaking server, driven through the real Stripe adapter over HTTP."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from processor.adapters.stripe_gateway import StripeGateway
from processor.fake_stripe import FakeStripeConfig, RunningStripe, start_fake_stripe
from retry.policy import (
    Charged,
    Declined,
    LookupCharged,
    LookupNoCharge,
    Rejected,
    Transient,
    TransientKind,
)
from schemas.outcome import ParkReason
from schemas.payment import PaymentRequest

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")
KEY = "sk_test_fake_stripe_tests"


def payment(**fields: Any) -> PaymentRequest:
    data: dict[str, Any] = {
        "payment_id": str(uuid.uuid4()),
        "amount": 1999,
        "currency": "EUR",
        "merchant_id": "m_1",
        "payment_method": "pm_card_visa",
        "metadata": {"order_id": "7"},
    }
    data.update(fields)
    return PaymentRequest.model_validate(data)


@pytest.fixture
async def server() -> AsyncIterator[RunningStripe]:
    running = await start_fake_stripe(FakeStripeConfig(processing_seconds=0.2, seed=1))
    yield running
    await running.stop()


@pytest.fixture
async def gateway(server: RunningStripe) -> AsyncIterator[StripeGateway]:
    client = StripeGateway(KEY, timeout=2.0, api_base=server.url)
    yield client
    await client.aclose()


async def test_a_charge_is_made_once_whatever_the_repeats(
    server: RunningStripe, gateway: StripeGateway
) -> None:
    request = payment()
    first = await gateway.charge(request)
    assert isinstance(first, Charged)
    assert first.charge_id.startswith("ch_")
    assert await gateway.charge(request) == first
    assert server.state.replays == 1
    assert server.state.charges_by_payment == {request.key: 1}
    assert await gateway.lookup(request.key) == LookupCharged(first.charge_id)


async def test_declines_by_amount_and_by_payment_method(gateway: StripeGateway) -> None:
    by_amount = await gateway.charge(payment(amount=3402))
    assert isinstance(by_amount, Declined)
    assert by_amount.error.code == "generic_decline"
    funds = await gateway.charge(payment(payment_method="pm_card_chargeDeclinedInsufficientFunds"))
    assert isinstance(funds, Declined)
    assert funds.error.code == "insufficient_funds"
    three_ds = await gateway.charge(payment(payment_method="pm_card_authenticationRequired"))
    assert isinstance(three_ds, Declined)
    assert three_ds.error.code == "authentication_required"


async def test_processing_settles_and_a_later_attempt_sees_it(
    server: RunningStripe, gateway: StripeGateway
) -> None:
    request = payment(payment_method="pm_sepa_debit")
    pending = await gateway.charge(request)
    assert isinstance(pending, Transient)
    assert pending.kind is TransientKind.PENDING_AT_GATEWAY
    while server.state.stats(with_payments=False)["intents"].get("processing"):
        await asyncio.sleep(0.05)
    assert isinstance(await gateway.charge(request), Charged)
    assert server.state.charges_by_payment == {request.key: 1}


async def test_same_key_other_parameters_is_an_idempotency_conflict(
    gateway: StripeGateway,
) -> None:
    request = payment()
    assert isinstance(await gateway.charge(request), Charged)
    changed = request.model_copy(update={"amount": 2500})
    conflict = await gateway.charge(changed)
    assert isinstance(conflict, Rejected)
    assert conflict.park_reason is ParkReason.INVALID_MESSAGE


async def test_search_finds_payments_after_the_index_lag(server: RunningStripe) -> None:
    client = StripeGateway(KEY, timeout=2.0, api_base=server.url, idempotency_ttl=1e-9)
    try:
        request = payment()
        charged = await client.charge(request)
        assert isinstance(charged, Charged)
        assert await client.lookup(request.key) == LookupCharged(charged.charge_id)
        assert await client.lookup(str(uuid.uuid4())) == LookupNoCharge()
    finally:
        await client.aclose()


async def test_only_test_mode_keys_are_accepted(server: RunningStripe) -> None:
    client = StripeGateway("sk_live_not_here", timeout=2.0, api_base=server.url)
    try:
        answer = await client.charge(payment())
        assert isinstance(answer, Transient)
        assert answer.kind is TransientKind.GATEWAY_AUTH
    finally:
        await client.aclose()
