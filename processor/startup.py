"""Reaching the broker and the database at start-up, and saying so in one line.

Under compose or Kubernetes a command often starts before the broker or the database
accepts connections. Each entry point therefore waits for them with a bounded exponential
back-off (tenacity) for ``PAYPROC_STARTUP_TIMEOUT`` seconds (``--wait``), says once what it
cannot reach and how long it will wait, and uses the dependency as soon as it answers. When
the time is up, or the failure is one that waiting cannot fix (a refused login, a missing
SQLite directory), it raises ``Unreachable``: its message is the one line the command prints
before it exits non-zero, instead of the driver's traceback.

The gateway is not waited for: the worker runs without it (payments wait in the retry ladder
and the circuit breaker pauses consumption), so ``report_gateway`` only says so.

Passwords in every URL shown are masked (``amqp://guest:***@host:5672/``).
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import aio_pika
from aio_pika.abc import AbstractRobustConnection
from aiormq.exceptions import AMQPError, ProbableAuthenticationError
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_before_delay,
    wait_exponential,
)

from processor.errors import ProcessorError

log = logging.getLogger("payproc.startup")

T = TypeVar("T")

BACKOFF_FIRST = 0.25
BACKOFF_MAX = 5.0
"""Back-off between attempts: 0.25 s doubling up to 5 s, so a dependency that comes up is
used within seconds and a long wait does not hammer it."""

GATEWAY_PROBE_SECONDS = 2.0

# Errors of a server that is starting, full or not there yet; anything else (a refused login,
# a database that does not exist) will not change by waiting.
_DB_TRANSIENT = frozenset(
    {"CannotConnectNowError", "TooManyConnectionsError", "ConnectionDoesNotExistError"}
)


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (the user name is kept)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if not password:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


@dataclass(frozen=True)
class Dependency:
    """A service a command needs: what it is, where, and which setting names it."""

    what: str
    url: str
    setting: str

    def __str__(self) -> str:
        return f"the {self.what} at {mask_url(self.url)}"


class Unreachable(ProcessorError):
    """A dependency could not be reached; ``str()`` is the one line to print."""

    def __init__(self, dependency: Dependency, reason: str, outcome: str) -> None:
        super().__init__(f"cannot reach {dependency} ({reason}); {outcome}")
        self.dependency = dependency
        self.reason = reason


def reason_of(exc: BaseException) -> str:
    """A short, one-line cause: ``connection refused`` rather than the driver's repr."""
    cause: BaseException = exc
    if isinstance(exc, DBAPIError) and isinstance(exc.orig, BaseException):
        cause = exc.orig
    if isinstance(cause, OSError) and cause.errno is not None:
        if cause.errno == errno.ECONNREFUSED:
            return "connection refused"
        return cause.strerror or errno.errorcode.get(cause.errno, str(cause.errno))
    if isinstance(cause, TimeoutError):
        return "timed out"
    text_ = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    name = type(cause).__name__
    return f"{name}: {text_}"[:200] if text_ else name


def _broker_transient(exc: BaseException) -> bool:
    if isinstance(exc, ProbableAuthenticationError):
        return False
    return isinstance(exc, OSError | TimeoutError)


def _database_transient(exc: BaseException) -> bool:
    if isinstance(exc, OSError | TimeoutError):
        return True
    if isinstance(exc, DBAPIError):
        orig = exc.orig
        if isinstance(orig, OSError | TimeoutError):
            return True
        return type(orig).__name__ in _DB_TRANSIENT
    return False


def _seconds(value: float) -> str:
    return f"{value:g} s"


async def reach(
    dependency: Dependency,
    attempt: Callable[[], Awaitable[T]],
    *,
    patience: float,
    transient: Callable[[BaseException], bool],
    refusals: tuple[type[BaseException], ...] = (),
) -> T:
    """Return ``await attempt()``, retrying transient failures for up to ``patience`` seconds.

    The first transient failure is logged once (one WARNING line with the URL, masked, and
    how long the command will wait); giving up raises ``Unreachable``, and so does one of
    ``refusals`` (the dependency answered no: a refused login, a missing database). Any other
    exception is a bug and propagates unchanged.
    """

    def announce(state: RetryCallState) -> None:
        if state.attempt_number == 1 and state.outcome is not None:
            exc = state.outcome.exception()
            assert exc is not None
            log.warning(
                "cannot reach %s (%s); retrying for up to %s (%s or --wait)",
                dependency,
                reason_of(exc),
                _seconds(patience),
                "PAYPROC_STARTUP_TIMEOUT",
            )

    retrying = AsyncRetrying(
        stop=stop_before_delay(patience),
        wait=wait_exponential(multiplier=BACKOFF_FIRST, max=BACKOFF_MAX),
        retry=retry_if_exception(transient),
        before_sleep=announce,
        reraise=True,
    )
    try:
        with _quiet_drivers():
            async for trial in retrying:
                with trial:
                    return await attempt()
    except Exception as exc:
        if not transient(exc):
            if not isinstance(exc, refusals):
                raise
            raise Unreachable(
                dependency, reason_of(exc), f"not retrying: check {dependency.setting}"
            ) from exc
        outcome = (
            f"gave up after {_seconds(patience)}, exiting"
            if patience > 0
            else "not waiting (PAYPROC_STARTUP_TIMEOUT=0), exiting"
        )
        raise Unreachable(dependency, reason_of(exc), outcome) from exc
    raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover


async def reach_broker(
    amqp_url: str, patience: float, *, connection_name: str
) -> AbstractRobustConnection:
    """A robust broker connection, waiting for the broker for up to ``patience`` seconds."""

    async def connect() -> AbstractRobustConnection:
        return await aio_pika.connect_robust(
            amqp_url,
            client_properties={"connection_name": connection_name},
            reconnect_interval=1.0,
        )

    return await reach_broker_with(amqp_url, patience, connect)


async def reach_broker_with(
    amqp_url: str, patience: float, connect: Callable[[], Awaitable[T]]
) -> T:
    """``await connect()`` (something that connects to the broker at ``amqp_url``), waiting
    for the broker for up to ``patience`` seconds."""
    return await reach(
        Dependency("broker", amqp_url, "PAYPROC_AMQP_URL"),
        connect,
        patience=patience,
        transient=_broker_transient,
        refusals=(AMQPError,),
    )


async def reach_database(engine: AsyncEngine, database_url: str, patience: float) -> None:
    """Wait until the database answers ``SELECT 1`` (for up to ``patience`` seconds)."""
    dependency = Dependency("database", database_url, "PAYPROC_DATABASE_URL")
    path = engine.url.database
    if engine.dialect.name == "sqlite" and path and not path.startswith(":memory:"):
        # Said up front: a failed aiosqlite connect leaves a thread that reports to the closed
        # event loop as the command exits (a traceback after the one line).
        folder = Path(path).parent
        if not folder.is_dir():
            raise Unreachable(
                dependency,
                f"folder {folder} does not exist",
                f"not retrying: check {dependency.setting}",
            )

    async def ping() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    await reach(
        dependency, ping, patience=patience, transient=_database_transient, refusals=(DBAPIError,)
    )


async def report_gateway(gateway_url: str, setting: str = "PAYPROC_GATEWAY_URL") -> bool:
    """Open (and close) a TCP connection to the gateway; if that fails, log one line saying
    the worker consumes anyway. Returns whether the gateway was reachable."""
    parts = urlsplit(gateway_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        async with asyncio.timeout(GATEWAY_PROBE_SECONDS):
            _reader, writer = await asyncio.open_connection(parts.hostname, port)
        writer.close()
        return True
    except (OSError, TimeoutError) as exc:
        dependency = Dependency("gateway", gateway_url, setting)
        log.warning(
            "cannot reach %s (%s); consuming anyway: payments wait in the retry ladder and "
            "the circuit breaker pauses consumption while the gateway fails",
            dependency,
            reason_of(exc),
        )
        return False


class _DropConnectErrors(logging.Filter):
    """aiormq logs every failed connection attempt at ERROR; ``reach`` reports them itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("error when creating transport")


@contextmanager
def _quiet_drivers() -> Iterator[None]:
    logger = logging.getLogger("aiormq.connection")
    drop = _DropConnectErrors()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)
