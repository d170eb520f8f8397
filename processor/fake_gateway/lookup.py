"""The fake gateway's charge lookup: ``GET /v1/charges?idempotency_key=<key>``, from its ledger.

It answers ``200 {"object": "list", "data": [charge…]}`` with every charge made with the key
(``data: []`` when none was), as the gateway HTTP contract says. The
``lookup_failure_rate`` knob makes a share of lookups answer 503 instead ("cannot say now"),
so the in-doubt path and the reconciler can be exercised (``outage`` concerns charges only);
``GatewayState.lookups`` counts the lookups asked for. Lookups share the ``rate_limit`` bucket
with charges, as a real gateway's limit covers every request.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from processor.fake_gateway.answers import error, invalid
from processor.fake_gateway.charge import over_rate_limit, respond
from processor.fake_gateway.state import STATE_KEY
from processor.fake_server import JSON, json_response

__all__ = ["LOOKUP_UNAVAILABLE", "handle_lookup", "lookup_list"]

LOOKUP_UNAVAILABLE: Final = error(
    503, "api_error", "lookup_unavailable", "Charges cannot be listed right now."
)
_MISSING_KEY: Final = invalid(
    "missing_idempotency_key", "The idempotency_key query parameter is required."
)


def lookup_list(charge_ids: list[str], key: str) -> dict[str, Any]:
    """The list body for ``key``: one succeeded charge per charge the ledger made with it."""
    return {
        "object": "list",
        "data": [
            {"id": charge_id, "object": "charge", "status": "succeeded", "idempotency_key": key}
            for charge_id in charge_ids
        ],
    }


async def handle_lookup(request: web.Request) -> web.StreamResponse:
    """``GET /v1/charges``: the charges made with ``idempotency_key``, or a 503 fault."""
    state = request.app[STATE_KEY]
    state.lookups += 1
    # A lookup is a request like any other to the gateway's own rate limiter (Stripe counts
    # reads and writes against one limit).
    refused = over_rate_limit(state)
    if refused is not None:
        return refused
    if state.draw(state.config.lookup_failure_rate):
        return respond(state, LOOKUP_UNAVAILABLE)
    key = request.query.get("idempotency_key", "")
    if not key:
        return web.Response(status=400, body=_MISSING_KEY.body, content_type=JSON)
    return json_response(200, lookup_list(list(state.charge_ids.get(key, [])), key))
