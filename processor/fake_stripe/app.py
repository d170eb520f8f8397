"""A local server speaking the subset of Stripe's API the Stripe adapter uses.

For the end-to-end tests and ``payproc demo --gateway stripe`` (Stripe's own mock server
cannot be built here). It keeps an honest ledger of the charges it makes and follows
Stripe's documented behaviour where payproc depends on it:

* ``POST /v1/payment_intents`` (form-encoded, ``confirm=true``): creates and confirms; a
  ``sk_test_`` key is required (anything else: 401).
* ``Idempotency-Key``: the same key with the same parameters returns the stored answer with
  ``Idempotent-Replayed: true``; with other parameters a 400 ``idempotency_error``. Answers to
  requests that failed validation (400) are not stored. One key is served one at a time.
* ``GET /v1/payment_intents/{id}`` and ``GET /v1/payment_intents/search`` with
  ``query=metadata['payment_id']:'<id>'``; ``search_lag`` hides intents younger than that, as
  Stripe's search index lags behind writes.
* Outcomes: ``amount % 1000 == 402`` and ``pm_card_chargeDeclined*`` decline (402
  ``card_error``), ``pm_card_authenticationRequired`` is declined ``authentication_required``
  as Stripe does off-session, ``amount % 1000 == 422`` is a 400 ``invalid_request_error``,
  ``pm_sepa_debit`` / ``pm_usBankAccount*`` stay ``processing`` for ``processing_seconds``
  then succeed; anything else succeeds.
* Faults, drawn from ``random.Random(seed)``: a 500 with ``Stripe-Should-Retry: true`` before
  executing (``failure_rate``), a 429 with ``Retry-After`` (``rate_limit_rate``), a hang
  before executing (``timeout_rate``) and a charge whose answer is lost in a hang
  (``charge_then_timeout_rate``).

Admin routes (loopback use only): ``GET /_stats`` (``?summary=1`` leaves out the per-payment
ledger), ``POST /_config`` (JSON knobs), ``GET /healthz``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import signal
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Final

import orjson
from aiohttp import web

from retry.stripe_amounts import refusal

_SEARCH: Final = re.compile(r"^\s*metadata\['payment_id'\]\s*:\s*'([^']*)'\s*$")
_JSON: Final = "application/json"
_VERSION: Final = "2024-06-20"


@dataclass(slots=True)
class FakeStripeConfig:
    failure_rate: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after: float = 1.0
    timeout_rate: float = 0.0
    charge_then_timeout_rate: float = 0.0
    hang_seconds: float = 30.0
    processing_seconds: float = 0.5
    search_lag: float = 0.0
    seed: int | None = None


@dataclass(slots=True)
class Intent:
    id: str
    body: dict[str, Any]
    created: float
    payment_id: str


@dataclass(slots=True)
class Stored:
    params: list[tuple[str, str]]
    status: int
    body: bytes


@dataclass(slots=True)
class StripeState:
    """The ledger, the intents and the idempotency store; in-process tests read it."""

    config: FakeStripeConfig
    rng: random.Random = field(init=False)
    requests: int = 0
    charges_by_payment: dict[str, int] = field(default_factory=dict)
    intents: dict[str, Intent] = field(default_factory=dict)
    stored: dict[str, Stored] = field(default_factory=dict)
    answers: Counter[int] = field(default_factory=Counter)
    replays: int = 0
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.config.seed)

    def draw(self, rate: float) -> bool:
        return rate > 0.0 and self.rng.random() < rate

    def lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def hang(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    def current(self, intent: Intent) -> dict[str, Any]:
        """The intent as it is now: ``processing`` settles after ``processing_seconds``."""
        body = intent.body
        settled = time.monotonic() - intent.created >= self.config.processing_seconds
        if body["status"] == "processing" and settled:
            body["status"] = "succeeded"
            body["amount_received"] = body["amount"]
            body["latest_charge"] = "ch_" + os.urandom(12).hex()
        return body

    def stats(self, *, with_payments: bool) -> dict[str, Any]:
        statuses = Counter(self.current(i)["status"] for i in self.intents.values())
        result: dict[str, Any] = {
            "requests": self.requests,
            "charges": sum(self.charges_by_payment.values()),
            "charged_payments": len(self.charges_by_payment),
            "double_charged": [k for k, n in self.charges_by_payment.items() if n > 1],
            "replays": self.replays,
            "intents": dict(statuses),
            "answers": {str(k): v for k, v in sorted(self.answers.items())},
            "config": asdict(self.config),
        }
        if with_payments:
            result["charges_by_key"] = dict(self.charges_by_payment)
        return result


STATE: Final = web.AppKey("payproc_fake_stripe_state", StripeState)


def _error(status: int, type_: str, message: str, **fields: Any) -> tuple[int, bytes]:
    return status, orjson.dumps({"error": {"type": type_, "message": message, **fields}})


def _respond(
    state: StripeState, status: int, body: bytes, headers: dict[str, str] | None = None
) -> web.Response:
    state.answers[status] += 1
    all_headers = {"Request-Id": "req_" + os.urandom(7).hex(), "Stripe-Version": _VERSION}
    all_headers.update(headers or {})
    return web.Response(status=status, body=body, content_type=_JSON, headers=all_headers)


def _authorised(request: web.Request) -> tuple[int, bytes] | None:
    key = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if key.startswith("sk_test_"):
        return None
    shown = f"{key[:8]}****{key[-4:]}" if len(key) > 12 else "****"
    return _error(401, "invalid_request_error", f"Invalid API Key provided: {shown}")


def _outcome(state: StripeState, params: dict[str, str]) -> tuple[int, bytes, bool]:
    """Execute a validated create: (status, body, charged)."""
    amount = int(params["amount"])
    method = params["payment_method"]
    intent_id = "pi_" + os.urandom(12).hex()
    metadata = {k[9:-1]: v for k, v in params.items() if k.startswith("metadata[")}
    body: dict[str, Any] = {
        "id": intent_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_received": 0,
        "currency": params["currency"],
        "capture_method": "automatic",
        "created": int(time.time()),
        "description": params.get("description"),
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "metadata": metadata,
        "payment_method": method,
        "status": "succeeded",
    }
    decline = None
    if amount % 1000 == 402 or method.startswith("pm_card_chargeDeclined"):
        decline = (
            "card_declined",
            "insufficient_funds" if "Insufficient" in method else "generic_decline",
        )
    elif method == "pm_card_authenticationRequired":
        decline = ("authentication_required", "authentication_required")
    payment_id = metadata.get("payment_id", "")
    state.intents[intent_id] = Intent(intent_id, body, time.monotonic(), payment_id)
    if decline is not None:
        code, decline_code = decline
        message = "Your card was declined."
        body["status"] = "requires_payment_method"
        body["last_payment_error"] = {
            "type": "card_error", "code": code, "decline_code": decline_code, "message": message,
        }  # fmt: skip
        status, raw = _error(
            402, "card_error", message, code=code, decline_code=decline_code, payment_intent=body
        )
        return status, raw, False
    if method == "pm_sepa_debit" or method.startswith("pm_usBankAccount"):
        body["status"] = "processing"
    else:
        body["amount_received"] = amount
        body["latest_charge"] = "ch_" + os.urandom(12).hex()
    state.charges_by_payment[payment_id] = state.charges_by_payment.get(payment_id, 0) + 1
    return 200, orjson.dumps(body), True


def _invalid(params: dict[str, str]) -> tuple[int, bytes] | None:
    """Validation Stripe does before executing (such answers are not stored)."""
    for name in ("amount", "currency", "payment_method"):
        if not params.get(name):
            return _error(
                400, "invalid_request_error", f"Missing required param: {name}.",
                code="parameter_missing", param=name,
            )  # fmt: skip
    amount = params["amount"]
    if not amount.isdigit() or int(amount) % 1000 == 422:
        return _error(400, "invalid_request_error", "Invalid integer: amount", param="amount")
    refused = refusal(int(amount), params["currency"])
    if refused is not None:
        return _error(400, "invalid_request_error", refused.message, code=refused.code)
    if params.get("confirm") != "true":
        return _error(400, "invalid_request_error", "This server only creates with confirm=true.")
    return None


async def _create(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    state.requests += 1
    config = state.config
    refused = _authorised(request)
    if refused is not None:
        return _respond(state, *refused)
    if state.draw(config.failure_rate):
        status, body = _error(500, "api_error", "An unknown error occurred")
        return _respond(state, status, body, {"Stripe-Should-Retry": "true"})
    if state.draw(config.rate_limit_rate):
        status, body = _error(
            429, "invalid_request_error", "Request rate limit exceeded.", code="rate_limit"
        )
        return _respond(state, status, body, {"Retry-After": f"{config.retry_after:g}"})
    if state.draw(config.timeout_rate):
        await state.hang(config.hang_seconds)
        return _respond(state, *_error(500, "api_error", "An unknown error occurred"))
    form = await request.post()
    params = {k: str(v) for k, v in form.items()}
    ordered = sorted(params.items())
    key = request.headers.get("Idempotency-Key", "")
    async with state.lock(key) if key else contextlib.nullcontext():
        stored = state.stored.get(key) if key else None
        if stored is not None:
            if stored.params != ordered:
                return _respond(
                    state,
                    *_error(
                        400,
                        "idempotency_error",
                        "Keys for idempotent requests can only be used with the same parameters "
                        f"they were first used with. Try using a key other than '{key}' if you "
                        "meant to execute a different request.",
                    ),
                )
            state.replays += 1
            headers = {"Idempotent-Replayed": "true", "Idempotency-Key": key}
            return _respond(state, stored.status, stored.body, headers)
        invalid = _invalid(params)
        if invalid is not None:
            return _respond(state, *invalid)
        status, body, _charged = _outcome(state, params)
        lose_answer = state.draw(config.charge_then_timeout_rate)
        if key:
            state.stored[key] = Stored(ordered, status, body)
    if lose_answer:
        await state.hang(config.hang_seconds)
    return _respond(state, status, body, {"Idempotency-Key": key} if key else None)


async def _retrieve(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    refused = _authorised(request)
    if refused is not None:
        return _respond(state, *refused)
    intent = state.intents.get(request.match_info["intent"])
    if intent is None:
        return _respond(
            state,
            *_error(
                404, "invalid_request_error", "No such payment_intent", code="resource_missing"
            ),
        )
    return _respond(state, 200, orjson.dumps(state.current(intent)))


async def _search(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    refused = _authorised(request)
    if refused is not None:
        return _respond(state, *refused)
    match = _SEARCH.match(request.query.get("query", ""))
    if match is None:
        return _respond(
            state,
            *_error(400, "invalid_request_error", "This server searches metadata['payment_id']."),
        )
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
    summary = request.query.get("summary", "") not in ("", "0", "false")
    stats = request.app[STATE].stats(with_payments=not summary)
    return web.Response(body=orjson.dumps(stats), content_type=_JSON)


async def _config(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    changes = orjson.loads(await request.read() or b"{}")
    known = {f.name for f in fields(FakeStripeConfig)}
    if not isinstance(changes, dict) or set(changes) - known:
        return web.Response(status=400, text=f"knobs are: {', '.join(sorted(known))}")
    state.config = replace(state.config, **changes)
    return web.Response(body=orjson.dumps(asdict(state.config)), content_type=_JSON)


async def _healthz(request: web.Request) -> web.StreamResponse:
    return web.Response(body=b'{"status": "ok"}', content_type=_JSON)


def create_app(config: FakeStripeConfig) -> web.Application:
    app = web.Application()
    app[STATE] = StripeState(replace(config))
    app.router.add_post("/v1/payment_intents", _create)
    app.router.add_get("/v1/payment_intents/search", _search)
    app.router.add_get("/v1/payment_intents/{intent}", _retrieve)
    app.router.add_get("/_stats", _stats)
    app.router.add_post("/_config", _config)
    app.router.add_get("/healthz", _healthz)

    async def wake(app: web.Application) -> None:
        app[STATE]._wake.set()

    app.on_shutdown.append(wake)
    return app


@dataclass(slots=True)
class RunningStripe:
    url: str
    state: StripeState
    _runner: web.AppRunner

    async def stop(self) -> None:
        self.state._wake.set()
        await self._runner.cleanup()


async def start_fake_stripe(
    config: FakeStripeConfig, host: str = "127.0.0.1", port: int = 0
) -> RunningStripe:
    """Serve on ``host:port`` (0 picks a free port) in the current loop until ``stop()``."""
    app = create_app(config)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    return RunningStripe(f"http://{bound_host}:{bound_port}", app[STATE], runner)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    for knob in fields(FakeStripeConfig):
        kind = int if knob.name == "seed" else float
        parser.add_argument(
            "--" + knob.name.replace("_", "-"), type=kind, default=knob.default, help=knob.name
        )


async def _serve(config: FakeStripeConfig, host: str, port: int) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = await start_fake_stripe(config, host, port)
    print(f"fake Stripe listening on {server.url}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m processor.fake_stripe",
        description="a local server speaking Stripe's PaymentIntents subset",
    )
    add_arguments(parser)
    ns = parser.parse_args(argv)
    config = FakeStripeConfig(**{f.name: getattr(ns, f.name) for f in fields(FakeStripeConfig)})
    try:
        return asyncio.run(_serve(config, ns.host, ns.port))
    except OSError as exc:
        print(f"fake Stripe cannot listen on {ns.host}:{ns.port}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
