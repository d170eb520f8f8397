"""payproc as separate processes on one test namespace: the fake gateway, workers, an admin.

Each is started with ``python -m processor`` (``tests.support.processes``) and stopped by pid
when the test ends. The test talks to them the way an operator would: the fake gateway over
its admin routes (``/_config``, ``/_stats``, the charge lookup), the admin over its HTTP API
with an operator token. Settings come from ``Settings`` (the test's ``settings_factory``)
turned into ``PAYPROC_*`` variables, so processes and test agree on broker, database and
namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from dataclasses import dataclass, field
from typing import Any

import httpx

from processor.config import Settings
from tests.support.processes import Processes

OPERATOR_TOKEN = f"op-{secrets.token_hex(16)}"
START_TIMEOUT = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def settings_env(settings: Settings, **extra: Any) -> dict[str, str]:
    """``PAYPROC_*`` variables for ``settings``; ``extra`` (``reconcile_interval=0.2``) on top."""
    values: dict[str, Any] = {
        "amqp_url": settings.amqp_url,
        "database_url": settings.database_url,
        "namespace": settings.namespace,
        "gateway_url": settings.gateway_url,
        "gateway_timeout": settings.gateway_timeout,
        "retry_delays": ",".join(f"{d:g}" for d in settings.retry_delays),
        "max_attempts": settings.max_attempts,
        "prefetch": settings.prefetch,
        "metrics_bind": "127.0.0.1:0",
        "log_level": "INFO",
        **extra,
    }
    return {f"PAYPROC_{name.upper()}": str(value) for name, value in values.items()}


async def wait_until_up(procs: Processes, proc: Any, client: httpx.AsyncClient, path: str) -> None:
    """Poll ``path`` until it answers 200 (a process announces readiness no other way);
    fail with the process's log if it exits or does not come up in time."""
    deadline = asyncio.get_running_loop().time() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode}:\n{procs.log_of(proc)}")
        with contextlib.suppress(httpx.TransportError):
            if (await client.get(path)).status_code == 200:
                return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not up within {START_TIMEOUT} s:\n{procs.log_of(proc)}")
        await asyncio.sleep(0.1)


@dataclass
class GatewayProcess:
    """``payproc fake-gateway``: its knobs, its ledger and its charge lookup over HTTP."""

    url: str
    client: httpx.AsyncClient

    async def configure(self, **knobs: Any) -> None:
        answer = await self.client.post("/_config", json=knobs)
        assert answer.status_code == 200, answer.text
        # The config is applied in the request; reading it back proves it.
        assert all(answer.json()[k] == v for k, v in knobs.items()), answer.text

    async def stats(self) -> dict[str, Any]:
        answer = await self.client.get("/_stats")
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    async def charge_ids(self, payment_id: str) -> list[str]:
        """The ids of the charges made with ``payment_id`` (a lookup: counted in ``lookups``)."""
        answer = await self.client.get("/v1/charges", params={"idempotency_key": payment_id})
        assert answer.status_code == 200, answer.text
        return [charge["id"] for charge in answer.json()["data"]]


@dataclass
class AdminProcess:
    """``payproc admin`` (API, DLQ ingest and the reconciler) seen through its HTTP API."""

    url: str
    client: httpx.AsyncClient

    async def get(self, path: str, **params: Any) -> Any:
        answer = await self.client.get(path, params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()

    async def entries(self, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = (await self.get("/dlq/messages", **params))["items"]
        return items

    async def replay(self, entry_id: str) -> httpx.Response:
        return await self.client.post(f"/dlq/messages/{entry_id}/replay")


@dataclass
class ProcessStack:
    """Starts the processes of one test; ``close()`` stops them (by pid) and the clients."""

    procs: Processes
    settings: Settings
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    def _client(self, url: str, **kwargs: Any) -> httpx.AsyncClient:
        client = httpx.AsyncClient(base_url=url, timeout=30, **kwargs)
        self.clients.append(client)
        return client

    async def start_gateway(self, **flags: Any) -> GatewayProcess:
        """``payproc fake-gateway`` on a free port; ``flags`` are its command-line knobs."""
        port = free_port()
        args = ["fake-gateway", "--port", str(port), "--seed", "7"]
        for flag, value in flags.items():
            args += [f"--{flag.replace('_', '-')}", str(value)]
        proc = self.procs.start(*args, name="gateway")
        url = f"http://127.0.0.1:{port}"
        gateway = GatewayProcess(url, self._client(url))
        await wait_until_up(self.procs, proc, gateway.client, "/healthz")
        self.settings = self.settings.model_copy(update={"gateway_url": url})
        return gateway

    def start_worker(self, **extra: Any) -> None:
        """``payproc worker`` (no need to wait: requests wait in the declared queue)."""
        env = settings_env(self.settings, **extra)
        self.procs.start("worker", "--grace", "5", env=env, name="worker")

    async def start_admin(self, **extra: Any) -> AdminProcess:
        """``payproc admin`` with an operator token; returns once ``/readyz`` says ready
        (database, broker and the DLQ ingest consumer)."""
        port = free_port()
        env = settings_env(
            self.settings,
            admin_tokens=f"ops:operator:{OPERATOR_TOKEN}",
            **extra,
        )
        proc = self.procs.start("admin", "--bind", f"127.0.0.1:{port}", env=env, name="admin")
        url = f"http://127.0.0.1:{port}"
        client = self._client(url, headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
        await wait_until_up(self.procs, proc, client, "/readyz")
        return AdminProcess(url, client)

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()
        await asyncio.to_thread(self.procs.stop_all)
