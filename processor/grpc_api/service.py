"""The gRPC ``payproc.v1.Payments`` service and its life cycle.

``Charge`` turns the caller's deadline into the RPC client's timeout (less a small margin, so
the service's own DEADLINE_EXCEEDED with its explanation reaches the caller before the
caller's clock runs out) and maps the outcome:

==========================================  ==================================================
outcome                                      gRPC answer
==========================================  ==================================================
final result (succeeded, declined,           ``OK`` with ``status``; ``error`` says why for
dead_lettered)                               declined and dead-lettered payments
schema violation                             ``INVALID_ARGUMENT``, the message names the field
no final result before the deadline          ``DEADLINE_EXCEEDED``; the payment continues
(also an ``unknown`` outcome: never a         (``GetPayment`` shows ``UNKNOWN`` until the
failure; it may have been charged)            reconciler settles it)
deadline too short to submit at all          ``DEADLINE_EXCEEDED``; nothing was submitted
broker refused / unreachable                 ``UNAVAILABLE``; charging again is safe
==========================================  ==================================================

A dead-lettered payment is answered ``OK`` with status ``DEAD_LETTERED``: it *was* processed,
its final state is "parked for an operator", and the result (attempts, error code) is more
useful to the caller than a bare error status. ``GetPayment`` reads the store: ``NOT_FOUND``
for an unknown payment, ``UNAVAILABLE`` when the database cannot be reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol

import grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from processor.adapters.sql_store import SqlPaymentStore
from processor.config import Settings
from processor.db import make_engine
from processor.grpc_api.cli import DEFAULT_BIND
from processor.grpc_api.codegen import load
from processor.grpc_api.convert import payload_from_proto, payment_to_proto, result_to_proto
from processor.ports import PaymentSnapshot, StoreUnavailable
from processor.rpc_client import (
    ChargeTimeout,
    ClientClosed,
    InvalidRequest,
    NotAccepted,
    RpcClient,
    to_request,
)
from processor.startup import reach_broker_with, reach_database
from retry.names import Names
from retry.topology import declare_topology

log = logging.getLogger("payproc.grpc")

SERVICE_NAME = "payproc.v1.Payments"


class PaymentReader(Protocol):
    async def get(self, payment_id: str) -> PaymentSnapshot | None: ...


@dataclass(frozen=True, slots=True)
class ServiceOptions:
    default_timeout: float = 30.0
    """Seconds a ``Charge`` without a deadline waits for its result."""
    margin: float = 0.1
    """Seconds (at most a fifth of the deadline) kept to answer before the caller's deadline."""
    min_timeout: float = 0.005
    """Below this, the deadline is too short to submit the payment at all."""

    def timeout_for(self, time_remaining: float | None) -> float | None:
        """The RPC timeout for a call with ``time_remaining`` seconds; None = too short."""
        if time_remaining is None:
            return self.default_timeout
        timeout = time_remaining - min(self.margin, time_remaining / 5)
        return timeout if timeout >= self.min_timeout else None


async def _abort(context: Any, code: Any, details: str) -> NoReturn:
    await context.abort(code, details)
    raise AssertionError("context.abort returned")  # pragma: no cover


class PaymentsService:
    """Implements the generated ``PaymentsServicer`` interface (registered by name)."""

    def __init__(
        self,
        client: RpcClient,
        store: PaymentReader,
        options: ServiceOptions | None = None,
    ) -> None:
        self._client = client
        self._store = store
        self._options = options or ServiceOptions()
        self._pb2 = load().pb2

    async def Charge(self, request: Any, context: Any) -> Any:  # gRPC method names
        try:
            payment = to_request(payload_from_proto(request))
        except InvalidRequest as exc:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, exc.error.message)
        timeout = self._options.timeout_for(context.time_remaining())
        if timeout is None:
            await _abort(
                context,
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"payment {payment.key}: the deadline is too short to submit it; "
                "nothing was submitted",
            )
        try:
            result = await self._client.charge(payment, timeout=timeout)
        except ChargeTimeout:
            log.info("charge deadline exceeded", extra={"payment_id": payment.key})
            await _abort(
                context,
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"payment {payment.key} has no final result yet; it continues in the "
                "background: query it with GetPayment, or call Charge again with the same "
                "payment_id (it is never charged twice)",
            )
        except (NotAccepted, ClientClosed) as exc:
            await _abort(context, grpc.StatusCode.UNAVAILABLE, str(exc))
        return result_to_proto(self._pb2, result)

    async def GetPayment(self, request: Any, context: Any) -> Any:
        try:
            payment_id = str(uuid.UUID(str(request.payment_id)))
        except ValueError:
            await _abort(
                context, grpc.StatusCode.INVALID_ARGUMENT, "payment_id: must be a UUID string"
            )
        try:
            snapshot = await self._store.get(payment_id)
        except StoreUnavailable as exc:
            await _abort(context, grpc.StatusCode.UNAVAILABLE, f"store unavailable: {exc}")
        if snapshot is None:
            await _abort(context, grpc.StatusCode.NOT_FOUND, f"payment {payment_id} not found")
        return payment_to_proto(self._pb2, snapshot)


@dataclass
class RunningService:
    """A gRPC server serving ``Payments`` in the current event loop."""

    port: int
    server: Any
    client: RpcClient
    engine: AsyncEngine
    host: str = "127.0.0.1"
    _stopped: bool = field(default=False, repr=False)

    @property
    def target(self) -> str:
        """``host:port`` for ``grpc.aio.insecure_channel``."""
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"{shown}:{self.port}"

    async def stop(self, grace: float = 5.0) -> None:
        """Refuse new calls, give running ones ``grace`` seconds, then close everything."""
        if self._stopped:
            return
        self._stopped = True
        try:
            await self.server.stop(grace)
        finally:
            await self.client.close()
            await self.engine.dispose()


def _host_of(bind: str) -> str:
    host = bind.rsplit(":", 1)[0].strip("[]")
    return "127.0.0.1" if host in ("", "0.0.0.0") else ("::1" if host == "::" else host)  # noqa: S104


async def start_service(
    settings: Settings,
    bind: str = DEFAULT_BIND,
    *,
    options: ServiceOptions | None = None,
    declare: bool = True,
) -> RunningService:
    """Connect, (optionally) declare the topology, and serve ``Payments`` on ``bind``.

    Port 0 picks a free port (``RunningService.port``). Declaring the topology lets charges
    queue up before the first worker starts. The tables are left to the worker: concurrent
    ``create_all`` calls of two starting processes collide on SQLite ("table already
    exists"), and until a worker has run, ``GetPayment`` answers UNAVAILABLE.
    """
    generated = load()
    client = await reach_broker_with(
        settings.amqp_url,
        settings.startup_timeout,
        lambda: RpcClient.connect(settings.amqp_url, settings.namespace),
    )
    engine = make_engine(settings.database_url)
    try:
        await reach_database(engine, settings.database_url, settings.startup_timeout)
        if declare:
            await declare_topology(
                client.connection,
                Names(settings.namespace),
                settings.retry_delays,
                settings.delivery_limit,
            )
        servicer = PaymentsService(client, SqlPaymentStore(engine), options)
        # SO_REUSEPORT is on by default in gRPC: two servers could then share a port silently.
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        generated.pb2_grpc.add_PaymentsServicer_to_server(servicer, server)
        try:
            port = int(server.add_insecure_port(bind))
        except RuntimeError as exc:
            raise OSError(f"cannot listen on {bind}: {exc}") from exc
        if port == 0:
            raise OSError(f"cannot listen on {bind}")
        await server.start()
    except BaseException:
        await client.close()
        await engine.dispose()
        raise
    log.info("grpc service listening", extra={"bind": bind, "port": port})
    return RunningService(
        port=port, server=server, client=client, engine=engine, host=_host_of(bind)
    )


async def serve(
    settings: Settings,
    bind: str = DEFAULT_BIND,
    *,
    options: ServiceOptions | None = None,
    stop: asyncio.Event | None = None,
    grace: float = 10.0,
) -> int:
    """Serve until ``stop`` is set (``payproc grpc`` sets it on SIGTERM/SIGINT); a stop
    during start-up ends the wait for the broker or the database at once."""
    stop = stop or asyncio.Event()
    starting = asyncio.ensure_future(start_service(settings, bind, options=options))
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if not starting.done():
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await starting
        print("payproc grpc: stopped during start-up", file=sys.stderr, flush=True)
        return 0
    running = starting.result()
    print(f"payproc grpc listening on {running.target}", flush=True)
    try:
        await stop.wait()
    finally:
        await running.stop(grace)
    return 0
