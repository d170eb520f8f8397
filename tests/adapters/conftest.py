"""The HTTP gateway adapter against respx: a router for the gateway contract and the adapter
sending through it (``test_stripe_gateway`` defines its own for Stripe's API)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import respx

from processor.adapters.http_gateway import HttpGateway

GATEWAY_BASE = "http://gateway.test"


@pytest.fixture
def router() -> respx.Router:
    return respx.Router(base_url=GATEWAY_BASE, assert_all_called=False)


@pytest.fixture
async def gateway(router: respx.Router) -> AsyncIterator[HttpGateway]:
    client = HttpGateway(GATEWAY_BASE, 1.0, transport=httpx.MockTransport(router.async_handler))
    yield client
    await client.aclose()
