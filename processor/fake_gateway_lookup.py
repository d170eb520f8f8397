"""The fake gateway's charge lookup: ``GET /v1/charges?idempotency_key=<key>``, from its ledger.

It answers ``200 {"object": "list", "data": [charge…]}`` with every charge made with the key
(``data: []`` when none was), as the SPEC's "Gateway HTTP contract" says. The
``lookup_failure_rate`` knob makes a share of lookups answer 503 instead ("cannot say now"),
so the in-doubt path and the reconciler can be exercised (``outage`` concerns charges only);
``GatewayState.lookups`` counts the lookups asked for.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
from aiohttp import web

LOOKUP_UNAVAILABLE: Final = orjson.dumps(
    {
        "error": {
            "type": "api_error",
            "code": "lookup_unavailable",
            "message": "Charges cannot be listed right now.",
        }
    }
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
    from processor.fake_gateway import STATE_KEY  # the state lives with the app

    state = request.app[STATE_KEY]
    state.lookups += 1
    if state.draw(state.config.lookup_failure_rate):
        state.answers[503] += 1
        return web.Response(status=503, body=LOOKUP_UNAVAILABLE, content_type="application/json")
    key = request.query.get("idempotency_key", "")
    if not key:
        body = orjson.dumps(
            {
                "error": {
                    "type": "invalid_request_error",
                    "code": "missing_idempotency_key",
                    "message": "The idempotency_key query parameter is required.",
                }
            }
        )
        return web.Response(status=400, body=body, content_type="application/json")
    body = orjson.dumps(lookup_list(list(state.charge_ids.get(key, [])), key))
    return web.Response(status=200, body=body, content_type="application/json")
