"""``POST /v1/charges``: the fake gateway's charge, with its faults and Stripe-like idempotency.

Transient faults (rate limit, outage, 503, a timeout before charging) charge and store
nothing. With a valid key and body, one key is served at a time: a stored final answer is
replayed, otherwise the by-amount outcome or a real charge is made and stored, and
``charge_then_timeout_rate`` may then lose the answer in a hang.
"""

from __future__ import annotations

import asyncio
import os
import time

import orjson
from aiohttp import web

from processor.fake_gateway.answers import (
    BY_AMOUNT,
    FAILURE,
    MAX_KEY_LENGTH,
    OUTAGE,
    RATE_LIMITED,
    TIMED_OUT,
    invalid,
    validate_charge,
)
from processor.fake_gateway.state import STATE_KEY, GatewayState, StoredAnswer
from processor.fake_server import JSON

__all__ = ["handle_charge", "respond"]


def respond(
    state: GatewayState, answer: StoredAnswer, retry_after: str | None = None
) -> web.Response:
    """Answer ``answer`` (counted per status), with a ``Retry-After`` header when given."""
    state.answers[answer.status] += 1
    headers = {"Retry-After": retry_after} if retry_after is not None else None
    return web.Response(status=answer.status, body=answer.body, content_type=JSON, headers=headers)


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def over_rate_limit(state: GatewayState) -> web.Response | None:
    """Count one request against the gateway's own limiter (charges and lookups alike); a
    429 with the seconds until a token as ``Retry-After`` when it is over, else ``None``."""
    wait = state.faults.admit(state.config.rate_limit, state.config.rate_limit_burst)
    if wait is None:
        return None
    return respond(state, RATE_LIMITED, f"{max(wait, 0.001):.3f}")


async def _transient_fault(state: GatewayState) -> web.Response | None:
    """A fault answered before anything is charged or stored, or ``None`` to go on."""
    config = state.config
    refused = over_rate_limit(state)
    if refused is not None:
        return refused
    if config.latency > 0:
        await asyncio.sleep(config.latency)
        config = state.config
    if config.outage:
        return respond(state, OUTAGE)
    if state.draw(config.failure_rate):
        return respond(state, FAILURE)
    if state.draw(config.rate_limit_rate):
        return respond(state, RATE_LIMITED, _format_seconds(config.retry_after))
    if state.draw(config.timeout_rate):
        await state.hang(config.hang_seconds)
        return respond(state, TIMED_OUT)
    return None


def _succeeded(key: str, charge: dict[str, object]) -> tuple[str, StoredAnswer]:
    charge_id = "ch_" + os.urandom(12).hex()
    body = {
        "id": charge_id,
        "object": "charge",
        "status": "succeeded",
        "amount": charge["amount"],
        "currency": charge["currency"],
        "merchant_id": charge["merchant_id"],
        "idempotency_key": key,
        "created": int(time.time()),
    }
    return charge_id, StoredAnswer(200, orjson.dumps(body))


async def handle_charge(request: web.Request) -> web.StreamResponse:
    """``POST /v1/charges``."""
    state = request.app[STATE_KEY]
    state.requests += 1
    fault = await _transient_fault(state)
    if fault is not None:
        return fault
    config = state.config
    key = request.headers.get("Idempotency-Key", "")
    if not key or len(key) > MAX_KEY_LENGTH:
        message = f"An Idempotency-Key header of 1 to {MAX_KEY_LENGTH} characters is required."
        return respond(state, invalid("missing_idempotency_key", message))
    stored = state.stored.get(key)
    if stored is not None:
        return respond(state, stored)
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return respond(state, invalid("invalid_json", "The body is not valid JSON."))
    problem, charge = validate_charge(body)
    if problem is not None:
        return respond(state, problem)
    if state.faults.sticky(
        config.sticky_failure_share, config.failing_merchants, key, charge["merchant_id"]
    ):
        return respond(state, FAILURE)

    async with state.key_lock(key):
        stored = state.stored.get(key)
        if stored is not None:
            return respond(state, stored)
        outcome = BY_AMOUNT.get(charge["amount"] % 1000) if config.by_amount else None
        if outcome is not None:
            answer, keep = outcome
            if keep:
                state.stored[key] = answer
            return respond(state, answer)
        lose_answer = state.draw(config.charge_then_timeout_rate)
        charge_id, answer = _succeeded(key, charge)
        state.stored[key] = answer
        state.record_charge(key, charge_id)
    if lose_answer:
        await state.hang(config.hang_seconds)
    return respond(state, answer)
