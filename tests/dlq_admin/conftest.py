"""Fixtures of the DLQ admin tests: the admin runtime in-process against the real broker and
database, an httpx client on its ASGI app, and tokens for an operator and a viewer."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aio_pika.abc import AbstractRobustConnection
from sqlalchemy.ext.asyncio import AsyncEngine

from dlq_admin.amqp import DlqConsumer
from dlq_admin.runtime import AdminRuntime
from dlq_admin.service import DlqAdmin
from processor.config import Settings
from retry.names import Names

OPERATOR_TOKEN = f"op-{secrets.token_hex(16)}"
VIEWER_TOKEN = f"view-{secrets.token_hex(16)}"
TOKENS = f"alice:operator:{OPERATOR_TOKEN},bob:viewer:{VIEWER_TOKEN}"
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
VIEWER = {"Authorization": f"Bearer {VIEWER_TOKEN}"}


@dataclass
class Admin:
    runtime: AdminRuntime
    client: httpx.AsyncClient
    names: Names
    connection: AbstractRobustConnection

    @property
    def service(self) -> DlqAdmin:
        assert self.runtime.service is not None
        return self.runtime.service

    @property
    def engine(self) -> AsyncEngine:
        assert self.runtime.engine is not None
        return self.runtime.engine

    @property
    def consumer(self) -> DlqConsumer:
        assert self.runtime.consumer is not None
        return self.runtime.consumer

    async def wait_handled(self, count: int, timeout: float = 20.0) -> None:
        """Wait until the ingest consumer settled ``count`` messages (new or duplicate)."""
        async with asyncio.timeout(timeout):
            await self.consumer.wait_handled(count)

    async def get(self, path: str, **params: Any) -> Any:
        response = await self.client.get(path, params=params, headers=VIEWER)
        assert response.status_code == 200, response.text
        return response.json()

    async def entries(self, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = (await self.get("/dlq/messages", **params))["items"]
        return items


StartAdmin = Callable[..., Awaitable[Admin]]


@pytest.fixture
def admin_settings(settings_factory: Callable[..., Settings]) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"admin_tokens": TOKENS, "admin_token": None}
        values.update(overrides)
        return settings_factory(**values)

    return make


@pytest.fixture
async def start_admin(
    topology: Names,
    connection: AbstractRobustConnection,
    admin_settings: Callable[..., Settings],
) -> AsyncIterator[StartAdmin]:
    """Start admin runtimes in this event loop (API via ASGI, ingest on the real broker)."""
    started: list[tuple[AdminRuntime, httpx.AsyncClient]] = []

    async def start(ingest: bool = True, run_jobs: bool = True, **overrides: Any) -> Admin:
        runtime = AdminRuntime(admin_settings(**overrides), ingest=ingest, run_jobs=run_jobs)
        await runtime.start()
        assert runtime.app is not None
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=runtime.app), base_url="http://admin", timeout=60
        )
        started.append((runtime, client))
        return Admin(runtime, client, topology, connection)

    yield start
    for runtime, client in reversed(started):
        await client.aclose()
        await runtime.stop()


@pytest.fixture
async def admin(start_admin: StartAdmin) -> Admin:
    return await start_admin()
