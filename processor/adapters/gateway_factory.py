"""Which gateway adapter the worker talks through (``PAYPROC_GATEWAY``).

``payproc`` (default) speaks the SPEC's HTTP contract; ``stripe`` speaks Stripe's
PaymentIntents API through the official library, an optional extra (``payproc[stripe]``)
imported only when selected.
"""

from __future__ import annotations

from typing import Protocol

from processor.adapters.http_gateway import HttpGateway
from processor.config import ConfigError, Settings
from processor.logs import register_secret
from processor.ports import ChargeLookup, Gateway

STRIPE_LIVE_RATE_LIMIT = 80.0
"""Default gateway requests per second with a live key: Stripe's documented limit is 100
operations per second per account in live mode (reads and writes counted separately); 80
leaves room for the lookups, the dashboard and other integrations sharing the account."""
STRIPE_TEST_RATE_LIMIT = 20.0
"""Default with a test-mode key: Stripe allows 25 operations per second in test mode."""


class GatewayAdapter(Gateway, ChargeLookup, Protocol):
    async def aclose(self) -> None: ...


def build_gateway(settings: Settings) -> GatewayAdapter:
    """The adapter ``settings`` select; refuses a missing ``stripe`` extra with one line."""
    if settings.gateway != "stripe":
        return HttpGateway(
            settings.gateway_url, settings.gateway_timeout, max_connections=settings.prefetch
        )
    try:
        from processor.adapters.stripe_gateway import StripeGateway
    except ImportError:
        raise ConfigError(
            "payproc: PAYPROC_GATEWAY=stripe needs Stripe's library: pip install 'payproc[stripe]'"
        ) from None
    assert settings.stripe_api_key is not None  # the settings refuse stripe without a key
    key = settings.stripe_api_key.get_secret_value()
    register_secret(key)
    return StripeGateway(
        key,
        timeout=settings.gateway_timeout,
        api_base=settings.stripe_api_base,
        idempotency_ttl=settings.gateway_idempotency_ttl,
    )


def default_rate_limit(settings: Settings) -> float | None:
    """Gateway requests per second to hold when ``PAYPROC_GATEWAY_RATE_LIMIT`` is not set."""
    if settings.gateway != "stripe" or settings.stripe_api_key is None:
        return None
    live = settings.stripe_api_key.get_secret_value().startswith(("sk_live_", "rk_live_"))
    return STRIPE_LIVE_RATE_LIMIT if live else STRIPE_TEST_RATE_LIMIT
