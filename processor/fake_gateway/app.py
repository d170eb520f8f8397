"""The fake gateway's application: its routes, the admin ones, and serving it in a loop."""

from __future__ import annotations

from dataclasses import asdict, replace

import orjson
from aiohttp import web

from processor.fake_gateway.charge import handle_charge
from processor.fake_gateway.config import FakeGatewayConfig
from processor.fake_gateway.lookup import handle_lookup
from processor.fake_gateway.state import STATE_KEY, GatewayState
from processor.fake_server import (
    RunningApp,
    error_body,
    fake_app,
    json_response,
    start_app,
    wants_summary,
)

__all__ = ["RunningGateway", "create_app", "start_fake_gateway"]

RunningGateway = RunningApp[GatewayState]
"""A fake gateway serving in the current event loop: ``url``, ``state`` and ``stop()``."""


def _bad_config(code: str, message: str) -> web.Response:
    body = error_body("invalid_request_error", message, code=code)
    return web.Response(status=400, body=body, content_type="application/json")


async def _stats(request: web.Request) -> web.StreamResponse:
    return json_response(200, request.app[STATE_KEY].stats(with_keys=not wants_summary(request)))


async def _config(request: web.Request) -> web.StreamResponse:
    raw = await request.read()
    try:
        changes = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError:
        return _bad_config("invalid_json", "The body is not valid JSON.")
    if not isinstance(changes, dict):
        return _bad_config("invalid_body", "The body must be a JSON object of knobs.")
    try:
        config = request.app[STATE_KEY].update_config(changes)
    except (ValueError, TypeError) as exc:
        return _bad_config("invalid_config", str(exc))
    return json_response(200, asdict(config))


async def _reset(request: web.Request) -> web.StreamResponse:
    request.app[STATE_KEY].reset()
    return json_response(200, {"status": "reset"})


def create_app(config: FakeGatewayConfig) -> web.Application:
    """Build the gateway application; its ledger is ``app[STATE_KEY]``."""
    config.validate()
    app = fake_app(STATE_KEY, GatewayState(config=replace(config)))
    app.router.add_post("/v1/charges", handle_charge)
    app.router.add_get("/v1/charges", handle_lookup)
    app.router.add_get("/_stats", _stats)
    app.router.add_post("/_config", _config)
    app.router.add_post("/_reset", _reset)
    return app


async def start_fake_gateway(
    config: FakeGatewayConfig, host: str = "127.0.0.1", port: int = 0
) -> RunningGateway:
    """Serve a fake gateway on ``host:port`` (0 picks a free port) until ``stop()``."""
    app = create_app(config)
    return await start_app(app, app[STATE_KEY], host, port)
