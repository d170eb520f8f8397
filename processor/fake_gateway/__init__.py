"""The bundled fake payment gateway: the demo, the tests, the chaos suite and the benchmarks use it.

It speaks the gateway HTTP contract that ``processor.adapters.http_gateway`` calls
(``POST /v1/charges`` with an ``Idempotency-Key``), keeps an honest in-memory ledger of
every charge it makes, and can be told to misbehave in the ways real gateways do, so that
payproc's retry and idempotency guarantees can be checked end to end:

* deterministic outcomes by amount (``amount % 1000``): 402 declines, 400/404/409/422
  rejections, 401/403 authentication failures (switch off with ``by_amount=False``);
* random faults drawn from ``random.Random(seed)``: 503 before charging (``failure_rate``),
  429 with ``Retry-After`` (``rate_limit_rate``), a hang then 504 before charging
  (``timeout_rate``), a charge whose answer is lost to the caller's timeout
  (``charge_then_timeout_rate``), added ``latency`` and a full ``outage``;
* faults that follow payments or merchants and a rate limit of its own (``faults``).

Idempotency follows Stripe: the same key returns the first final answer (2xx, 402 and the
by-amount 404/409/422) without charging again; a 400, 401, 403, 429, 5xx or a timeout before
the charge stores nothing, so a later attempt with the key is processed afresh. Concurrent
requests with one key are serialised by a per-key lock, so they can never both charge.

Admin routes (no auth, loopback use only): ``GET /_stats`` (``?summary=1`` omits
``charges_by_key``), ``POST /_config`` (change knobs at runtime), ``POST /_reset``,
``GET /healthz``. The ``latency`` knob applies to ``POST /v1/charges`` only. Payment method
values are never logged, stored or echoed. ``GET /v1/charges?idempotency_key=`` looks a charge
up from the ledger (``lookup``; ``lookup_failure_rate`` makes lookups fail).

Modules, one job each: ``config`` (the knobs), ``state`` (ledger and idempotency store),
``answers`` (canned answers and charge validation), ``charge`` (``POST /v1/charges``),
``lookup`` (``GET /v1/charges``), ``faults`` (sticky failures and the rate limit), ``app``
(routes and serving), ``cli`` (``payproc fake-gateway``). What it shares with the fake
Stripe is in ``processor.fake_server``.
"""

from processor.fake_gateway.app import RunningGateway, create_app, start_fake_gateway
from processor.fake_gateway.cli import add_arguments, config_from_args, main, run
from processor.fake_gateway.config import FakeGatewayConfig
from processor.fake_gateway.state import STATE_KEY, GatewayState, StoredAnswer

__all__ = [
    "STATE_KEY",
    "FakeGatewayConfig",
    "GatewayState",
    "RunningGateway",
    "StoredAnswer",
    "add_arguments",
    "config_from_args",
    "create_app",
    "main",
    "run",
    "start_fake_gateway",
]
