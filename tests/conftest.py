"""Shared fixtures: a unique namespace per test, a real broker, a database per test run.

Set ``PAYPROC_TEST_DB=postgres`` to run the database-backed tests against the local
PostgreSQL (a fresh database per test run, dropped at the end); the default is SQLite in a
temporary directory.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection

from processor.config import Settings
from processor.fake_gateway import FakeGatewayConfig, RunningGateway, start_fake_gateway
from processor.worker import Worker, WorkerOptions
from retry.names import Names
from retry.topology import declare_topology, delete_topology
from tests.support.broker import AMQP_URL, PG_ADMIN_URL, require
from tests.support.collect import Collector, collect_exchange, collect_queue

TEST_DELAYS = (0.1, 0.2, 0.4)
RUN_ID = uuid.uuid4().hex[:8]


DATABASE_FIXTURES = frozenset({"database_url", "postgres_url", "database_kind"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test that takes the ``amqp_url`` fixture is a broker test.

    The PostgreSQL pass (``PAYPROC_TEST_DB=postgres``) runs the tests that reach a database
    (their fixtures include ``database_url``); the others do not depend on the database and
    already ran in the SQLite pass, so they are deselected (reported, never skipped)."""
    for item in items:
        if "amqp_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.broker)
    if os.environ.get("PAYPROC_TEST_DB") != "postgres":
        return
    keep, drop = [], []
    for item in items:
        uses_db = DATABASE_FIXTURES & set(getattr(item, "fixturenames", ()))
        (keep if uses_db else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def amqp_url() -> str:
    require(AMQP_URL, 5672, "RabbitMQ")
    return AMQP_URL


@pytest.fixture(scope="session")
def database_kind() -> str:
    return os.environ.get("PAYPROC_TEST_DB", "sqlite")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, dropped afterwards."""
    require(PG_ADMIN_URL, 5432, "PostgreSQL")
    from tests.support import pg as admin

    name = f"payproc_test_{RUN_ID}"
    admin.create_database(PG_ADMIN_URL, name)
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    admin.upgrade_schema(url)
    try:
        yield url
    finally:
        admin.drop_database(PG_ADMIN_URL, name)


@pytest.fixture
def database_url(database_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if database_kind == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'payproc.db'}"


@pytest.fixture
def namespace() -> str:
    return f"t{RUN_ID}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def names(namespace: str) -> Names:
    return Names(namespace)


@pytest.fixture
async def connection(amqp_url: str) -> AsyncIterator[AbstractRobustConnection]:
    conn = await aio_pika.connect_robust(amqp_url)
    yield conn
    await conn.close()


@pytest.fixture
async def topology(connection: AbstractRobustConnection, names: Names) -> AsyncIterator[Names]:
    """The namespace's exchanges and queues, deleted after the test."""
    await declare_topology(connection, names, TEST_DELAYS, 10)
    yield names
    await delete_topology(connection, names, TEST_DELAYS)


@pytest.fixture
async def gateway() -> AsyncIterator[RunningGateway]:
    running = await start_fake_gateway(FakeGatewayConfig(seed=7), port=0)
    yield running
    await running.stop()


@pytest.fixture
def settings_factory(amqp_url: str, database_url: str, namespace: str) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "amqp_url": amqp_url,
            "database_url": database_url,
            "namespace": namespace,
            "retry_delays": TEST_DELAYS,
            "max_attempts": 4,
            "gateway_timeout": 2.0,
            "prefetch": 50,
            "metrics_bind": "127.0.0.1:0",
        }
        values.update(overrides)
        return Settings(**values)

    return make


StartWorker = Callable[..., Awaitable[Worker]]


@pytest.fixture
async def start_worker(
    topology: Names, settings_factory: Callable[..., Settings]
) -> AsyncIterator[StartWorker]:
    """Run workers in-process (same event loop); stopped and awaited after the test."""
    running: list[tuple[Worker, asyncio.Task[None]]] = []

    async def start(options: WorkerOptions | None = None, **overrides: Any) -> Worker:
        worker = Worker(settings_factory(**overrides), options or WorkerOptions(grace_seconds=5))
        task = asyncio.create_task(worker.run())
        ready = asyncio.create_task(worker.ready.wait())
        done, _ = await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            ready.cancel()
            task.result()  # raises the start-up error
        running.append((worker, task))
        return worker

    yield start
    for worker, _task in running:
        worker.stop()
    for _worker, task in running:
        await asyncio.wait_for(task, 30)


@pytest.fixture
async def events(connection: AbstractRobustConnection, topology: Names) -> AsyncIterator[Collector]:
    collector, channel = await collect_exchange(connection, topology.events)
    yield collector
    await channel.close()


@pytest.fixture
async def dlq(connection: AbstractRobustConnection, topology: Names) -> AsyncIterator[Collector]:
    collector, channel = await collect_queue(connection, topology.dlq)
    yield collector
    await channel.close()
