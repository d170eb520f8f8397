"""The composition root of ``payproc admin``: wire the store, broker adapters, service, ingest
consumer and HTTP server, and run them in one process.

Start-up refuses (one line naming ``PAYPROC_ADMIN_TOKEN``) when no token is configured, before
touching the database or the broker, and (like the worker) when a PostgreSQL schema is behind
the code. Token values are registered as log secrets.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
from collections.abc import Coroutine
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import uvicorn
from aio_pika.abc import AbstractRobustConnection
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from dlq_admin.amqp import AmqpQueueProbe, AmqpReplayPublisher, DlqConsumer, declare_dlq_topology
from dlq_admin.auth import Authenticator, ConfiguredToken, configured_tokens
from dlq_admin.console import Console, ConsoleConfig, mount_console
from dlq_admin.console.session_rows import SqlSessionRows
from dlq_admin.errors import TokenConfigError
from dlq_admin.jobs.execution import JobExecution
from dlq_admin.jobs.runner import JobRunner
from dlq_admin.jobs.store import SqlJobStore
from dlq_admin.metrics import AdminMetrics
from dlq_admin.service import DlqAdmin
from dlq_admin.store import SqlDlqStore
from dlq_admin.truth_wiring import OutcomeTruth, wire_outcome_truth
from dlq_admin.web import create_app
from processor.config import ConfigError, Settings
from processor.db import is_sqlite, make_engine, reachable
from processor.logs import register_secret
from processor.migrate import ensure_current
from processor.startup import reach_broker, reach_database
from retry.names import Names

log = logging.getLogger("payproc.admin")


def admin_tokens(settings: Settings) -> list[ConfiguredToken]:
    """The configured tokens, registered as log secrets; ``ConfigError`` if there are none."""
    for secret in (settings.admin_token, settings.admin_tokens):
        register_secret(secret)
    try:
        tokens = configured_tokens(settings.admin_token, settings.admin_tokens)
    except TokenConfigError as exc:
        setting = "PAYPROC_ADMIN_TOKENS" if settings.admin_tokens else "PAYPROC_ADMIN_TOKEN"
        if "no admin token" in str(exc):
            raise ConfigError(f"payproc admin: refusing to start: {exc}") from None
        raise ConfigError(f"payproc admin: invalid setting {setting}: {exc}") from None
    for token in tokens:
        register_secret(token.secret)
    return tokens


def parse_bind(bind: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:8080`` for IPv6) -> ``(host, port)``; ``ConfigError`` if bad."""
    host, sep, port_text = bind.strip().rpartition(":")
    host = host.strip("[]")
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not sep or not host or not 0 <= port <= 65535:
        raise ConfigError(f"payproc admin: invalid setting PAYPROC_ADMIN_BIND: {bind!r}") from None
    return host, port


@dataclass
class AdminRuntime:
    """Everything ``payproc admin`` runs; ``ingest=False`` serves the API without consuming,
    ``run_jobs=False`` without running replay jobs or the retention purge."""

    settings: Settings
    ingest: bool = True
    reconcile: bool = True
    """Run the reconciler of ``unknown`` payments in this process."""
    run_jobs: bool = True
    runner: JobRunner | None = None
    engine: AsyncEngine | None = None
    connection: AbstractRobustConnection | None = None
    publisher: AmqpReplayPublisher | None = None
    consumer: DlqConsumer | None = None
    service: DlqAdmin | None = None
    app: FastAPI | None = None
    truth: OutcomeTruth | None = None
    console: Console | None = None
    _stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    async def start(self) -> DlqAdmin:
        settings = self.settings
        tokens = admin_tokens(settings)
        names = Names(settings.namespace)
        stack = self._stack
        try:
            engine = make_engine(settings.database_url)
            stack.push_async_callback(engine.dispose)
            # Same rule as the worker: SQLite is migrated at start, PostgreSQL must already be
            # current (`payproc db upgrade`), else start-up stops with what to run.
            await reach_database(engine, settings.database_url, settings.startup_timeout)
            await ensure_current(engine, auto_upgrade=is_sqlite(settings.database_url))
            self.engine = engine
            connection = await reach_broker(
                settings.amqp_url,
                settings.startup_timeout,
                connection_name=f"payproc-admin {settings.namespace}",
            )
            stack.push_async_callback(connection.close)
            self.connection = connection
            await declare_dlq_topology(connection, names)
            publisher = AmqpReplayPublisher(connection, names)
            await publisher.open()
            stack.push_async_callback(publisher.close)
            self.publisher = publisher
            store = SqlDlqStore(engine, settings.namespace)
            job_store = SqlJobStore(engine, settings.namespace)
            service = DlqAdmin(
                store,
                publisher,
                AmqpQueueProbe(connection, names.dlq),
                Authenticator(tokens),
                job_store=job_store,
                queue_name=names.dlq,
                retention_days=settings.dlq_retention_days,
                replay_rate=settings.admin_replay_rate,
            )
            self.service = service
            truth = await wire_outcome_truth(
                settings, engine, service, publisher, stack, run_reconciler=self.reconcile
            )
            self.truth = truth
            self.consumer = DlqConsumer(
                connection, names, service, prefetch=settings.admin_ingest_prefetch
            )
            if self.ingest:
                await self.start_ingest()
            metrics = AdminMetrics(service)
            self.runner = JobRunner(
                job_store,
                lambda job_id: JobExecution(
                    job_id,
                    job_store,
                    store,
                    service.replayer_paced_by,
                    poll=settings.admin_job_poll,
                    canary_timeout=settings.admin_canary_timeout,
                    stale_before=service.replayer.stale_before,
                    observe=metrics.job_event,
                    audit_log=service.audit_log,
                    truth_skips=truth.replay.bulk_skips,
                ),
                lease=settings.admin_job_lease,
                poll=settings.admin_job_poll,
            )
            service.jobs.on_change = self.runner.wake
            if self.run_jobs:
                self._background(self.runner.run(), "replay-jobs")
                if service.retention is not None:
                    self._background(
                        service.retention.run(settings.dlq_purge_interval), "dlq-retention"
                    )
            self.app = create_app(service)
            self.console = mount_console(
                self.app,
                service,
                ConsoleConfig(secure=settings.admin_console_https, ttl=settings.admin_session_ttl),
                SqlSessionRows(engine, settings.namespace),
            )
            self.app.state.metrics = metrics.render
            self.app.state.readiness = self.readiness
        except BaseException:
            await stack.aclose()
            raise
        log.info(
            "admin ready",
            extra={"namespace": settings.namespace, "tokens": ",".join(t.name for t in tokens)},
        )
        return service

    async def readiness(self) -> dict[str, bool]:
        checks = {
            "database": await reachable(self.engine),
            "broker": self.connection is not None and not self.connection.is_closed,
        }
        if self.ingest:
            checks["ingest"] = self.consumer is not None and self.consumer.attached
        return checks

    def _background(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``work`` until the runtime stops (then cancel it and wait for it)."""
        task = asyncio.create_task(work, name=name)

        async def stop() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        self._stack.push_async_callback(stop)

    async def start_ingest(self) -> None:
        assert self.consumer is not None, "runtime not started"
        await self.consumer.start()
        self._stack.push_async_callback(self.consumer.stop)

    async def stop(self) -> None:
        await self._stack.aclose()

    async def __aenter__(self) -> AdminRuntime:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


@dataclass
class RunningServer:
    url: str
    server: uvicorn.Server
    task: asyncio.Task[None]

    async def stop(self) -> None:
        self.server.should_exit = True
        await asyncio.wait_for(self.task, 30)


def _bound_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


async def start_server(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Serve ``app`` with uvicorn on ``host:port`` (0 = any free port) in this event loop."""
    sock = _bound_socket(host, port)
    bound_port = int(sock.getsockname()[1])
    config = uvicorn.Config(app, log_config=None, lifespan="off", server_header=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    deadline = asyncio.get_running_loop().time() + 30
    while not server.started:  # uvicorn exposes no start-up event: a bounded poll
        if task.done():
            task.result()
            raise RuntimeError("admin server stopped during start-up")
        if asyncio.get_running_loop().time() > deadline:
            server.should_exit = True
            raise TimeoutError("admin server did not start within 30 s")
        await asyncio.sleep(0.01)
    shown = f"[{host}]" if ":" in host else host
    return RunningServer(f"http://{shown}:{bound_port}", server, task)


class _NoColorMessage(logging.Filter):
    """uvicorn adds an ANSI-coloured copy of each message as an extra; our formatters would
    print it as ``color_message=...``."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.pop("color_message", None)
        return True


async def serve(settings: Settings, *, bind: str | None = None, ingest: bool = True) -> int:
    """``payproc admin``: run the API and the ingest consumer until SIGTERM/SIGINT."""
    logging.getLogger("uvicorn.error").addFilter(_NoColorMessage())
    admin_tokens(settings)  # refuse before connecting anywhere
    host, port = parse_bind(bind or settings.admin_bind)
    async with AdminRuntime(settings, ingest=ingest) as runtime:
        assert runtime.app is not None
        sock = _bound_socket(host, port)
        bound = int(sock.getsockname()[1])
        config = uvicorn.Config(runtime.app, log_config=None, lifespan="off", server_header=False)
        server = uvicorn.Server(config)
        shown = f"[{host}]" if ":" in host else host
        # Everything built so far (framework, ORM, app) lives as long as the process: move it
        # out of the collector's reach, so the collections that a bulk replay's allocations
        # trigger do not re-scan it each time (about a fifth of a bulk replay's CPU).
        gc.collect()
        gc.freeze()
        log.info("admin API listening on http://%s:%d (docs at /docs)", shown, bound)
        await server.serve(sockets=[sock])
    return 0
