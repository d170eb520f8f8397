"""The fake Stripe's routes and serving it in the current loop."""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import asdict, replace
from typing import Final

import orjson
from aiohttp import web

from processor.fake_server import (
    JSON,
    RunningApp,
    apply_knobs,
    fake_app,
    json_response,
    start_app,
    wants_summary,
)
from processor.fake_stripe.intents import create_intent, error, invalid_create
from processor.fake_stripe.state import STATE, FakeStripeConfig, Stored, StripeState

__all__ = ["RunningStripe", "create_app", "start_fake_stripe"]

RunningStripe = RunningApp[StripeState]
"""A fake Stripe serving in the current event loop: ``url``, ``state`` and ``stop()``."""

_SEARCH: Final = re.compile(r"^\s*metadata\['payment_id'\]\s*:\s*'([^']*)'\s*$")
_VERSION: Final = "2024-06-20"
_UNKNOWN_ERROR: Final = error(500, "api_error", "An unknown error occurred")


def _respond(
    state: StripeState, status: int, body: bytes, headers: dict[str, str] | None = None
) -> web.Response:
    state.answers[status] += 1
    all_headers = {"Request-Id": "req_" + os.urandom(7).hex(), "Stripe-Version": _VERSION}
    all_headers.update(headers or {})
    return web.Response(status=status, body=body, content_type=JSON, headers=all_headers)


def _refused(request: web.Request) -> web.Response | None:
    """The 401 for a key that is not a test-mode secret key (shown masked), else ``None``."""
    key = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if key.startswith("sk_test_"):
        return None
    shown = f"{key[:8]}****{key[-4:]}" if len(key) > 12 else "****"
    status, body = error(401, "invalid_request_error", f"Invalid API Key provided: {shown}")
    return _respond(request.app[STATE], status, body)


async def _fault(state: StripeState) -> web.Response | None:
    """A fault answered before executing, or ``None`` to go on."""
    config = state.config
    if state.draw(config.failure_rate):
        return _respond(state, *_UNKNOWN_ERROR, {"Stripe-Should-Retry": "true"})
    if state.draw(config.rate_limit_rate):
        status, body = error(
            429, "invalid_request_error", "Request rate limit exceeded.", code="rate_limit"
        )
        return _respond(state, status, body, {"Retry-After": f"{config.retry_after:g}"})
    if state.draw(config.timeout_rate):
        await state.hang(config.hang_seconds)
        return _respond(state, *_UNKNOWN_ERROR)
    return None


def _key_reused(key: str) -> tuple[int, bytes]:
    return error(
        400,
        "idempotency_error",
        "Keys for idempotent requests can only be used with the same parameters they were "
        f"first used with. Try using a key other than '{key}' if you meant to execute a "
        "different request.",
    )


async def _create(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    state.requests += 1
    refused = _refused(request)
    if refused is None:
        refused = await _fault(state)
    if refused is not None:
        return refused
    config = state.config
    form = await request.post()
    params = {k: str(v) for k, v in form.items()}
    ordered = sorted(params.items())
    key = request.headers.get("Idempotency-Key", "")
    async with state.key_lock(key) if key else contextlib.nullcontext():
        stored = state.stored.get(key) if key else None
        if stored is not None:
            if stored.params != ordered:
                return _respond(state, *_key_reused(key))
            state.replays += 1
            headers = {"Idempotent-Replayed": "true", "Idempotency-Key": key}
            return _respond(state, stored.status, stored.body, headers)
        invalid = invalid_create(params)
        if invalid is not None:
            return _respond(state, *invalid)
        status, body = create_intent(state, params)
        lose_answer = state.draw(config.charge_then_timeout_rate)
        if key:
            state.stored[key] = Stored(ordered, status, body)
    if lose_answer:
        await state.hang(config.hang_seconds)
    return _respond(state, status, body, {"Idempotency-Key": key} if key else None)


async def _retrieve(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    refused = _refused(request)
    if refused is not None:
        return refused
    intent = state.intents.get(request.match_info["intent"])
    if intent is None:
        missing = error(
            404, "invalid_request_error", "No such payment_intent", code="resource_missing"
        )
        return _respond(state, *missing)
    return _respond(state, 200, orjson.dumps(state.current(intent)))


async def _search(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    refused = _refused(request)
    if refused is not None:
        return refused
    match = _SEARCH.match(request.query.get("query", ""))
    if match is None:
        unsupported = error(
            400, "invalid_request_error", "This server searches metadata['payment_id']."
        )
        return _respond(state, *unsupported)
    visible_before = time.monotonic() - state.config.search_lag
    found = [
        state.current(i)
        for i in state.intents.values()
        if i.payment_id == match.group(1) and i.created <= visible_before
    ]
    page = {
        "object": "search_result",
        "url": "/v1/payment_intents/search",
        "has_more": False,
        "next_page": None,
        "data": found,
    }
    return _respond(state, 200, orjson.dumps(page))


async def _stats(request: web.Request) -> web.StreamResponse:
    return json_response(200, request.app[STATE].stats(with_payments=not wants_summary(request)))


async def _config(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    changes = orjson.loads(await request.read() or b"{}")
    try:
        if not isinstance(changes, dict):
            raise ValueError("the body must be a JSON object of knobs")
        state.config = apply_knobs(state.config, changes)
    except ValueError as exc:
        return web.Response(status=400, text=str(exc))
    return json_response(200, asdict(state.config))


def create_app(config: FakeStripeConfig) -> web.Application:
    """Build the fake Stripe; its ledger is ``app[STATE]``."""
    app = fake_app(STATE, StripeState(config=replace(config)))
    app.router.add_post("/v1/payment_intents", _create)
    app.router.add_get("/v1/payment_intents/search", _search)
    app.router.add_get("/v1/payment_intents/{intent}", _retrieve)
    app.router.add_get("/_stats", _stats)
    app.router.add_post("/_config", _config)
    return app


async def start_fake_stripe(
    config: FakeStripeConfig, host: str = "127.0.0.1", port: int = 0
) -> RunningStripe:
    """Serve on ``host:port`` (0 picks a free port) in the current loop until ``stop()``."""
    app = create_app(config)
    return await start_app(app, app[STATE], host, port)
