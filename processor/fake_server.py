"""What the two bundled fakes (``processor.fake_gateway``, ``processor.fake_stripe``) share.

Both are aiohttp applications that misbehave on purpose and must stay honest while doing so:

* ``FaultKnobs``: the random faults both fakes inject, drawn before or after executing;
* ``FakeRuntime``: the seeded fault generator (``draw``), a per-key lock so concurrent
  requests with one idempotency key can never both charge, and hangs that end early when the
  server shuts down (a fault that "never answers" must not hold a test's teardown);
* ``apply_knobs``: the ``POST /_config`` rule, a subset of a config dataclass's fields
  replaced at once, unknown names refused;
* ``fake_app``: an application holding the fake's state, with ``GET /healthz`` and the
  shutdown hook that wakes hanging requests;
* ``start_app`` / ``RunningApp``: serve an application on a free port of the current loop;
* ``serve_until_signal``: the command-line loop, serving until SIGINT or SIGTERM with a
  one-line message when the port cannot be bound;
* ``json_response``, ``error_body``, ``wants_summary``, ``counts_by_status``: the JSON the
  admin routes answer with.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import random
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Generic, Protocol, TypeVar

import orjson
from aiohttp import web

__all__ = [
    "JSON",
    "FakeRuntime",
    "FaultKnobs",
    "RunningApp",
    "apply_knobs",
    "counts_by_status",
    "error_body",
    "fake_app",
    "is_number",
    "json_response",
    "run_loop",
    "serve_until_signal",
    "start_app",
    "wants_summary",
]

JSON: Final = "application/json"


class _Stoppable(Protocol):
    def wake_hanging(self) -> None: ...


StateT = TypeVar("StateT", bound=_Stoppable)
ConfigT = TypeVar("ConfigT")


def is_number(value: object) -> bool:
    """A finite int or float, and not a bool (``True`` is an int to Python, not a knob value)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(slots=True)
class FaultKnobs:
    """The random faults both fakes can inject; a fake's config extends it."""

    failure_rate: float = 0.0
    """Probability of a server error before executing (nothing charged)."""
    rate_limit_rate: float = 0.0
    """Probability of a 429 (with ``Retry-After: retry_after``) before executing."""
    retry_after: float = 1.0
    """Seconds announced in the ``Retry-After`` header of a 429."""
    timeout_rate: float = 0.0
    """Probability of hanging ``hang_seconds`` before executing, then an error."""
    charge_then_timeout_rate: float = 0.0
    """Probability of charging (answer stored), then hanging ``hang_seconds`` before answering."""
    hang_seconds: float = 30.0


@dataclass(slots=True)
class FakeRuntime:
    """Seeded fault draws, per-key locks and interruptible hangs; a fake's state extends it."""

    rng: random.Random = field(default_factory=random.Random, init=False, repr=False)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict, init=False, repr=False)
    _lock_users: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)

    def draw(self, rate: float) -> bool:
        """True with probability ``rate``; draws from the seeded generator only when 0 < rate."""
        return rate > 0.0 and self.rng.random() < rate

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
        """Sleep ``seconds``, or less if the server is shutting down."""
        if seconds <= 0 or self._wake.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    def wake_hanging(self) -> None:
        """End every hang now and make later ones return at once (shutdown)."""
        self._wake.set()


def apply_knobs(config: ConfigT, changes: Mapping[str, Any]) -> ConfigT:
    """``config`` with ``changes`` applied; ``ValueError`` naming unknown knobs."""
    known = sorted(f.name for f in dataclasses.fields(config))  # type: ignore[arg-type]
    unknown = sorted(set(changes).difference(known))
    if unknown:
        raise ValueError(f"unknown knob(s): {', '.join(unknown)}; knobs are {', '.join(known)}")
    return dataclasses.replace(config, **changes)  # type: ignore[type-var]


def error_body(error_type: str, message: str, **fields: Any) -> bytes:
    """A Stripe-shaped error: ``{"error": {"type": …, "message": …, **fields}}``."""
    return orjson.dumps({"error": {"type": error_type, "message": message, **fields}})


def json_response(status: int, payload: Any) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(payload), content_type=JSON)


def wants_summary(request: web.Request) -> bool:
    """``?summary=1`` on ``/_stats``: leave the per-payment ledger out."""
    return request.query.get("summary", "") not in ("", "0", "false")


def counts_by_status(answers: Counter[int]) -> dict[str, int]:
    """Answers counted per HTTP status, keyed by the status as text (JSON keys)."""
    return {str(status): n for status, n in sorted(answers.items())}


async def _healthz(_request: web.Request) -> web.StreamResponse:
    return json_response(200, {"status": "ok"})


def fake_app(key: web.AppKey[StateT], state: StateT) -> web.Application:
    """An application holding ``state`` under ``key``, answering ``GET /healthz``, whose
    shutdown wakes hanging requests (a hung fault must not hold the server's close)."""
    app = web.Application()
    app[key] = state

    async def on_shutdown(running: web.Application) -> None:
        running[key].wake_hanging()

    app.router.add_get("/healthz", _healthz)
    app.on_shutdown.append(on_shutdown)
    return app


@dataclass(slots=True)
class RunningApp(Generic[StateT]):
    """A fake serving in the current event loop; ``state`` is its ledger."""

    url: str
    state: StateT
    _runner: web.AppRunner

    async def stop(self) -> None:
        """Wake hanging requests and close the listener and every connection."""
        self.state.wake_hanging()
        await self._runner.cleanup()


async def start_app(
    app: web.Application, state: StateT, host: str, port: int
) -> RunningApp[StateT]:
    """Serve ``app`` on ``host:port`` (0 picks a free port) until ``stop()``."""
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
    return RunningApp(url=f"http://{shown}:{bound_port}", state=state, _runner=runner)


async def serve_until_signal(
    name: str, start: Callable[[], Awaitable[RunningApp[Any]]], where: str
) -> int:
    """Serve until SIGINT or SIGTERM; 1 with one line on stderr if ``where`` cannot be bound."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        running = await start()
    except OSError as exc:
        print(
            f"{name} cannot listen on {where}: {exc.strerror or exc}", file=sys.stderr, flush=True
        )
        return 1
    print(f"{name} listening on {running.url}", flush=True)
    try:
        await stop.wait()
    finally:
        await running.stop()
    return 0


def run_loop(main: Callable[[], Awaitable[int]]) -> int:
    """Run ``main`` in a fresh event loop (uvloop when installed); Ctrl-C exits 0."""
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(main())  # type: ignore[arg-type]
    except KeyboardInterrupt:
        return 0
