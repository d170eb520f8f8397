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
  (``charge_then_timeout_rate``), added ``latency`` and a full ``outage``.

Idempotency follows Stripe: the same key returns the first final answer (2xx, 402 and the
by-amount 404/409/422) without charging again; a 400, 401, 403, 429, 5xx or a timeout before
the charge stores nothing, so a later attempt with the key is processed afresh. Concurrent
requests with one key are serialised by a per-key lock, so they can never both charge.

Admin routes (no auth, loopback use only): ``GET /_stats`` (``?summary=1`` omits
``charges_by_key``), ``POST /_config`` (change knobs at runtime), ``POST /_reset``,
``GET /healthz``. The ``latency`` knob applies to ``POST /v1/charges`` only. Payment method
values are never logged, stored or echoed. ``GET /v1/charges?idempotency_key=`` looks a charge
up from the ledger (``fake_gateway_lookup``; ``lookup_failure_rate`` makes lookups fail).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Final

import orjson
from aiohttp import web

from processor import fake_faults
from processor.fake_gateway_lookup import handle_lookup

__all__ = [
    "STATE_KEY",
    "FakeGatewayConfig",
    "GatewayState",
    "RunningGateway",
    "StoredAnswer",
    "add_arguments",
    "config_from_args",
    "create_app",
    "run",
    "start_fake_gateway",
]

_RATE_KNOBS: Final = (
    "failure_rate",
    "rate_limit_rate",
    "timeout_rate",
    "charge_then_timeout_rate",
    "lookup_failure_rate",
)
_SECONDS_KNOBS: Final = ("retry_after", "hang_seconds", "latency")
_BOOL_KNOBS: Final = ("outage", "by_amount")
_MAX_KEY_LENGTH: Final = 255
_JSON: Final = "application/json"


@dataclass(slots=True)
class FakeGatewayConfig:
    """The knobs of the fake gateway; all of them but ``seed`` can be changed at runtime."""

    failure_rate: float = 0.0
    """Probability of a 503 before charging."""
    rate_limit_rate: float = 0.0
    """Probability of a 429 (with ``Retry-After: retry_after``) before charging."""
    retry_after: float = 1.0
    """Seconds announced in the ``Retry-After`` header of a 429."""
    timeout_rate: float = 0.0
    """Probability of hanging ``hang_seconds`` before charging, then answering 504."""
    charge_then_timeout_rate: float = 0.0
    """Probability of charging (answer stored), then hanging ``hang_seconds`` before answering."""
    hang_seconds: float = 30.0
    latency: float = 0.0
    """Seconds added to every ``/v1/charges`` request."""
    outage: bool = False
    """Every ``/v1/charges`` request answers 503 without charging."""
    by_amount: bool = True
    """Deterministic outcomes by ``amount % 1000`` (400, 401, 402, 403, 404, 409, 422)."""
    seed: int | None = None
    lookup_failure_rate: float = 0.0
    """Probability of a lookup (``GET /v1/charges``) answering 503: "cannot say now"."""
    # Gateway-protection knobs (see processor.fake_faults).
    sticky_failure_share: float = 0.0
    """Share of payment ids (stable, by hash) that get a 503 on every attempt."""
    failing_merchants: list[str] = field(default_factory=list)
    """Merchants whose every charge gets a 503."""
    rate_limit: float = 0.0
    """Requests/s accepted (token bucket); above it 429 with Retry-After. 0 = no limit."""
    rate_limit_burst: float = 0.25
    """Seconds' worth of requests the rate limit's bucket holds."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first knob whose value is out of range."""
        for name in _RATE_KNOBS:
            value = getattr(self, name)
            if not _is_number(value) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a number between 0 and 1, got {value!r}")
        for name in _SECONDS_KNOBS:
            value = getattr(self, name)
            if not _is_number(value) or value < 0:
                raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}")
        for name in _BOOL_KNOBS:
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false, got {value!r}")
        seed = self.seed
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ValueError(f"seed must be an integer or null, got {seed!r}")
        fake_faults.validate_knobs(
            self.sticky_failure_share,
            self.failing_merchants,
            self.rate_limit,
            self.rate_limit_burst,
        )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """A final answer kept for an idempotency key, replayed byte for byte."""

    status: int
    body: bytes


@dataclass(slots=True)
class GatewayState:
    """The in-memory ledger and idempotency store; in-process tests read it directly."""

    config: FakeGatewayConfig
    rng: random.Random = field(init=False)
    requests: int = 0
    charges: int = 0
    charges_by_key: dict[str, int] = field(default_factory=dict)
    charge_ids: dict[str, list[str]] = field(default_factory=dict)
    answers: Counter[int] = field(default_factory=Counter)
    stored: dict[str, StoredAnswer] = field(default_factory=dict)
    lookups: int = 0
    faults: fake_faults.FaultState = field(default_factory=fake_faults.FaultState)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict, init=False, repr=False)
    _lock_users: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.config.seed)

    # ---- ledger -------------------------------------------------------------------------

    def record_charge(self, key: str, charge_id: str) -> None:
        """Count one real charge event for ``key`` (more than one per key is a double charge)."""
        self.charges += 1
        self.charges_by_key[key] = self.charges_by_key.get(key, 0) + 1
        self.charge_ids.setdefault(key, []).append(charge_id)

    def charge_count(self, key: str) -> int:
        return self.charges_by_key.get(key, 0)

    @property
    def double_charged(self) -> list[str]:
        return [key for key, count in self.charges_by_key.items() if count > 1]

    def reset(self) -> None:
        """Forget every charge, stored answer and counter; the config is kept."""
        self.requests = 0
        self.charges = 0
        self.charges_by_key.clear()
        self.charge_ids.clear()
        self.answers.clear()
        self.stored.clear()
        self.lookups = 0
        self.faults.reset()

    def stats(self, *, with_keys: bool = True) -> dict[str, Any]:
        result: dict[str, Any] = {
            "requests": self.requests,
            "charges": self.charges,
            "charged_keys": len(self.charges_by_key),
            "double_charged": self.double_charged,
            "answers": {str(status): n for status, n in sorted(self.answers.items())},
            "lookups": self.lookups,
            "config": asdict(self.config),
            "protection": self.faults.stats(),
        }
        if with_keys:
            result["charges_by_key"] = dict(self.charges_by_key)
        return result

    # ---- runtime config -----------------------------------------------------------------

    def update_config(self, changes: dict[str, Any]) -> FakeGatewayConfig:
        """Apply a subset of knobs atomically; ``ValueError`` leaves the config unchanged."""
        known = {f.name for f in fields(FakeGatewayConfig)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown knob(s): {', '.join(unknown)}")
        candidate = replace(self.config, **changes)
        candidate.validate()
        if "seed" in changes:
            self.rng.seed(candidate.seed)
        self.config = candidate
        return candidate

    def draw(self, rate: float) -> bool:
        """True with probability ``rate``; draws from the seeded generator only when 0 < rate."""
        return rate > 0.0 and self.rng.random() < rate

    # ---- concurrency ------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def key_lock(self, key: str) -> AsyncIterator[None]:
        """Hold the lock of one idempotency key; the lock is dropped when nobody uses it."""
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        self._lock_users[key] = self._lock_users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            users = self._lock_users[key] - 1
            if users:
                self._lock_users[key] = users
            else:
                del self._lock_users[key]
                del self._locks[key]

    async def hang(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if the gateway is shutting down."""
        if seconds <= 0 or self._wake.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    def wake_hanging(self) -> None:
        self._wake.set()


STATE_KEY: Final = web.AppKey("payproc_fake_gateway_state", GatewayState)


# ---- answers -----------------------------------------------------------------------------


def _error_body(error_type: str, code: str, message: str) -> bytes:
    return orjson.dumps({"error": {"type": error_type, "code": code, "message": message}})


def _invalid(code: str, message: str) -> StoredAnswer:
    return StoredAnswer(400, _error_body("invalid_request_error", code, message))


_OUTAGE: Final = StoredAnswer(
    503, _error_body("api_error", "service_unavailable", "The gateway is unavailable.")
)
_FAILURE: Final = StoredAnswer(
    503, _error_body("api_error", "service_unavailable", "Temporary failure, please retry.")
)
_RATE_LIMITED: Final = StoredAnswer(
    429, _error_body("rate_limit_error", "rate_limited", "Too many requests, slow down.")
)
_TIMED_OUT: Final = StoredAnswer(
    504, _error_body("api_error", "gateway_timeout", "The card network did not answer in time.")
)

# amount % 1000 -> (answer, stored?)
_BY_AMOUNT: Final[dict[int, tuple[StoredAnswer, bool]]] = {
    400: (_invalid("parameter_invalid", "The request was rejected by the card network."), False),
    401: (
        StoredAnswer(
            401, _error_body("authentication_error", "invalid_api_key", "Invalid API key.")
        ),
        False,
    ),
    402: (
        StoredAnswer(402, _error_body("card_error", "card_declined", "Your card was declined.")),
        True,
    ),
    403: (
        StoredAnswer(
            403,
            _error_body("permission_error", "forbidden", "This API key may not create charges."),
        ),
        False,
    ),
    404: (
        StoredAnswer(
            404,
            _error_body("invalid_request_error", "resource_missing", "No such payment method."),
        ),
        True,
    ),
    409: (
        StoredAnswer(
            409,
            _error_body("invalid_request_error", "conflict", "The charge conflicts with another."),
        ),
        True,
    ),
    422: (
        StoredAnswer(
            422,
            _error_body("invalid_request_error", "unprocessable", "Cannot process the charge."),
        ),
        True,
    ),
}


def _respond(state: GatewayState, answer: StoredAnswer) -> web.Response:
    state.answers[answer.status] += 1
    return web.Response(status=answer.status, body=answer.body, content_type=_JSON)


def _json(status: int, payload: Any) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(payload), content_type=_JSON)


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def _looks_like_card_number(value: str) -> bool:
    digits = value.replace(" ", "").replace("-", "")
    return digits.isdigit() and 12 <= len(digits) <= 19


def _validate_charge(body: object) -> tuple[StoredAnswer | None, dict[str, Any]]:
    """Check a charge body; never echo the payment method in a message."""
    if not isinstance(body, dict):
        return _invalid("invalid_body", "The body must be a JSON object."), {}
    amount = body.get("amount")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        return _invalid("invalid_amount", "amount must be a positive integer."), {}
    currency = body.get("currency")
    if not (
        isinstance(currency, str)
        and len(currency) == 3
        and currency.isascii()
        and currency.isalpha()
        and currency.isupper()
    ):
        return _invalid("invalid_currency", "currency must be three upper-case letters."), {}
    payment_method = body.get("payment_method")
    if not isinstance(payment_method, str) or not payment_method:
        return _invalid("invalid_payment_method", "payment_method must be a token."), {}
    if _looks_like_card_number(payment_method):
        return _invalid(
            "invalid_payment_method", "payment_method must be a token, not a card number."
        ), {}
    merchant_id = body.get("merchant_id")
    if not isinstance(merchant_id, str) or not merchant_id:
        return _invalid("invalid_merchant_id", "merchant_id must be a non-empty string."), {}
    for name in ("customer_id", "description"):
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            return _invalid(f"invalid_{name}", f"{name} must be a string."), {}
    metadata = body.get("metadata")
    if metadata is not None and not (
        isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())
    ):
        return _invalid("invalid_metadata", "metadata must map strings to strings."), {}
    return None, body


# ---- handlers ----------------------------------------------------------------------------


async def _charge(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    state.requests += 1
    config = state.config
    wait = state.faults.admit(config.rate_limit, config.rate_limit_burst)
    if wait is not None:
        state.answers[429] += 1
        return web.Response(
            status=429,
            body=_RATE_LIMITED.body,
            content_type=_JSON,
            headers={"Retry-After": f"{max(wait, 0.001):.3f}"},
        )
    if config.latency > 0:
        await asyncio.sleep(config.latency)
        config = state.config

    # Transient faults: nothing is charged and nothing is stored.
    if config.outage:
        return _respond(state, _OUTAGE)
    if state.draw(config.failure_rate):
        return _respond(state, _FAILURE)
    if state.draw(config.rate_limit_rate):
        state.answers[429] += 1
        return web.Response(
            status=429,
            body=_RATE_LIMITED.body,
            content_type=_JSON,
            headers={"Retry-After": _format_seconds(config.retry_after)},
        )
    if state.draw(config.timeout_rate):
        await state.hang(config.hang_seconds)
        return _respond(state, _TIMED_OUT)

    key = request.headers.get("Idempotency-Key", "")
    if not key or len(key) > _MAX_KEY_LENGTH:
        return _respond(
            state,
            _invalid(
                "missing_idempotency_key",
                f"An Idempotency-Key header of 1 to {_MAX_KEY_LENGTH} characters is required.",
            ),
        )
    stored = state.stored.get(key)
    if stored is not None:
        return _respond(state, stored)

    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return _respond(state, _invalid("invalid_json", "The body is not valid JSON."))
    problem, charge = _validate_charge(body)
    if problem is not None:
        return _respond(state, problem)
    if state.faults.sticky(
        config.sticky_failure_share, config.failing_merchants, key, charge["merchant_id"]
    ):
        return _respond(state, _FAILURE)

    lose_answer = False
    async with state.key_lock(key):
        stored = state.stored.get(key)
        if stored is not None:
            return _respond(state, stored)
        amount: int = charge["amount"]
        if config.by_amount:
            outcome = _BY_AMOUNT.get(amount % 1000)
            if outcome is not None:
                answer, keep = outcome
                if keep:
                    state.stored[key] = answer
                return _respond(state, answer)
        lose_answer = state.draw(config.charge_then_timeout_rate)
        charge_id = "ch_" + os.urandom(12).hex()
        answer = StoredAnswer(
            200,
            orjson.dumps(
                {
                    "id": charge_id,
                    "object": "charge",
                    "status": "succeeded",
                    "amount": amount,
                    "currency": charge["currency"],
                    "merchant_id": charge["merchant_id"],
                    "idempotency_key": key,
                    "created": int(time.time()),
                }
            ),
        )
        state.stored[key] = answer
        state.record_charge(key, charge_id)
    if lose_answer:
        await state.hang(config.hang_seconds)
    return _respond(state, answer)


async def _stats(request: web.Request) -> web.StreamResponse:
    summary = request.query.get("summary", "") not in ("", "0", "false")
    return _json(200, request.app[STATE_KEY].stats(with_keys=not summary))


async def _config(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    raw = await request.read()
    try:
        changes = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError:
        return _json(
            400,
            {
                "error": {
                    "type": "invalid_request_error",
                    "code": "invalid_json",
                    "message": "The body is not valid JSON.",
                }
            },
        )
    if not isinstance(changes, dict):
        return _json(
            400,
            {
                "error": {
                    "type": "invalid_request_error",
                    "code": "invalid_body",
                    "message": "The body must be a JSON object of knobs.",
                }
            },
        )
    try:
        config = state.update_config(changes)
    except (ValueError, TypeError) as exc:
        return _json(
            400,
            {
                "error": {
                    "type": "invalid_request_error",
                    "code": "invalid_config",
                    "message": str(exc),
                }
            },
        )
    return _json(200, asdict(config))


async def _reset(request: web.Request) -> web.StreamResponse:
    request.app[STATE_KEY].reset()
    return _json(200, {"status": "reset"})


async def _healthz(request: web.Request) -> web.StreamResponse:
    return _json(200, {"status": "ok"})


async def _on_shutdown(app: web.Application) -> None:
    app[STATE_KEY].wake_hanging()


def create_app(config: FakeGatewayConfig) -> web.Application:
    """Build the gateway application; its ledger is ``app[STATE_KEY]``."""
    config.validate()
    app = web.Application()
    app[STATE_KEY] = GatewayState(replace(config))
    app.router.add_post("/v1/charges", _charge)
    app.router.add_get("/v1/charges", handle_lookup)
    app.router.add_get("/_stats", _stats)
    app.router.add_post("/_config", _config)
    app.router.add_post("/_reset", _reset)
    app.router.add_get("/healthz", _healthz)
    app.on_shutdown.append(_on_shutdown)
    return app


# ---- running -----------------------------------------------------------------------------


@dataclass(slots=True)
class RunningGateway:
    """A gateway serving in the current event loop."""

    url: str
    state: GatewayState
    _runner: web.AppRunner

    async def stop(self) -> None:
        """Wake hanging requests and close the listener and every connection."""
        self.state.wake_hanging()
        await self._runner.cleanup()


async def start_fake_gateway(
    config: FakeGatewayConfig, host: str = "127.0.0.1", port: int = 0
) -> RunningGateway:
    """Serve a fake gateway on ``host:port`` (0 picks a free port) until ``stop()``."""
    app = create_app(config)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    address = runner.addresses[0]
    bound_host, bound_port = str(address[0]), int(address[1])
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    return RunningGateway(url=f"http://{shown}:{bound_port}", state=app[STATE_KEY], _runner=runner)


# ---- command line ------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the fake gateway's flags to ``parser`` (``payproc fake-gateway``)."""
    defaults = FakeGatewayConfig()
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8081, help="port to bind, 0 = any (8081)")
    parser.add_argument(
        "--failure-rate",
        type=float,
        default=defaults.failure_rate,
        help="probability 0..1 of a 503 before charging",
    )
    parser.add_argument(
        "--rate-limit-rate",
        type=float,
        default=defaults.rate_limit_rate,
        help="probability 0..1 of a 429 with Retry-After",
    )
    parser.add_argument(
        "--retry-after",
        type=float,
        default=defaults.retry_after,
        help="seconds announced in Retry-After (1)",
    )
    parser.add_argument(
        "--timeout-rate",
        type=float,
        default=defaults.timeout_rate,
        help="probability 0..1 of hanging before charging, then a 504",
    )
    parser.add_argument(
        "--charge-then-timeout-rate",
        type=float,
        default=defaults.charge_then_timeout_rate,
        help="probability 0..1 of charging, then hanging before answering",
    )
    parser.add_argument(
        "--hang-seconds",
        type=float,
        default=defaults.hang_seconds,
        help="how long a timeout fault hangs (30)",
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=defaults.latency,
        help="seconds added to every charge request (0)",
    )
    parser.add_argument(
        "--outage", action="store_true", help="start in an outage: every charge request gets a 503"
    )
    parser.add_argument(
        "--no-by-amount",
        action="store_true",
        help="turn off the deterministic outcomes by amount %% 1000",
    )
    parser.add_argument(
        "--lookup-failure-rate",
        type=float,
        default=defaults.lookup_failure_rate,
        help="probability 0..1 of a charge lookup answering 503",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="seed of the fault generator (reproducible chaos)"
    )
    fake_faults.add_arguments(parser)


def config_from_args(ns: argparse.Namespace) -> FakeGatewayConfig:
    """Build the config from parsed flags; ``SystemExit`` with a one-line message if invalid."""
    for name in _RATE_KNOBS:
        value = getattr(ns, name)
        if not _is_number(value) or not 0.0 <= value <= 1.0:
            flag = "--" + name.replace("_", "-")
            raise SystemExit(f"{flag} must be between 0 and 1, got {value}")
    for name in _SECONDS_KNOBS:
        value = getattr(ns, name)
        if not _is_number(value) or value < 0:
            flag = "--" + name.replace("_", "-")
            raise SystemExit(f"{flag} must be a number of seconds >= 0, got {value}")
    return FakeGatewayConfig(
        failure_rate=ns.failure_rate,
        rate_limit_rate=ns.rate_limit_rate,
        retry_after=ns.retry_after,
        timeout_rate=ns.timeout_rate,
        charge_then_timeout_rate=ns.charge_then_timeout_rate,
        hang_seconds=ns.hang_seconds,
        latency=ns.latency,
        outage=bool(ns.outage),
        by_amount=not ns.no_by_amount,
        seed=ns.seed,
        lookup_failure_rate=ns.lookup_failure_rate,
        **fake_faults.knobs_from_args(ns),
    )


async def _serve(config: FakeGatewayConfig, host: str, port: int) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        gateway = await start_fake_gateway(config, host, port)
    except OSError as exc:
        print(
            f"fake gateway cannot listen on {host}:{port}: {exc.strerror or exc}",
            file=sys.stderr,
            flush=True,
        )
        return 1
    print(f"fake gateway listening on {gateway.url}", flush=True)
    try:
        await stop.wait()
    finally:
        await gateway.stop()
    return 0


def run(ns: argparse.Namespace) -> int:
    """Serve the fake gateway until SIGINT or SIGTERM; returns the exit status."""
    config = config_from_args(ns)
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(_serve(config, ns.host, ns.port))
    except KeyboardInterrupt:
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m processor.fake_gateway", description="payproc's fake payment gateway"
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
