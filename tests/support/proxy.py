"""A TCP proxy between a client and the broker that tests can cut or stall.

Modelled on aio-pika's own robust-connection tests: the only way to drop *one* client's
connection without disturbing other users of a shared broker.
"""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    def __init__(
        self,
        target_host: str = "127.0.0.1",
        target_port: int = 5672,
        *,
        fallbacks: list[tuple[str, int]] | None = None,
    ) -> None:
        """Forward to ``target``; when it refuses, try each fallback in turn (a load
        balancer in front of a cluster)."""
        self.target_host = target_host
        self.target_port = target_port
        self.targets = [(target_host, target_port), *(fallbacks or [])]
        self._server: asyncio.base_events.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.connections_made = 0
        self.connected = asyncio.Condition()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def url(self, user: str = "guest", password: str = "guest") -> str:  # noqa: S107 - the broker's local default account
        return f"amqp://{user}:{password}@127.0.0.1:{self.port}/"

    async def start(self, port: int = 0) -> None:
        """Listen on ``port`` (0 = any free port)."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", port)

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        for host, port in self.targets:
            try:
                server_r, server_w = await asyncio.open_connection(host, port)
                break
            except OSError:
                continue
        else:
            client_w.close()
            return
        pair = (client_w, server_w)
        self._pairs.add(pair)
        async with self.connected:
            self.connections_made += 1
            self.connected.notify_all()
        try:
            await asyncio.gather(self._pipe(client_r, server_w), self._pipe(server_r, client_w))
        finally:
            self._pairs.discard(pair)
            for writer in pair:
                writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        writer.close()

    @property
    def live(self) -> int:
        return len(self._pairs)

    async def wait_live(self, timeout: float = 30) -> None:
        """Wait until at least one client connection is forwarded right now."""

        async def _wait() -> None:
            async with self.connected:
                await self.connected.wait_for(lambda: self.live > 0)

        await asyncio.wait_for(_wait(), timeout)

    def cut(self) -> int:
        """Drop every live connection at once; returns how many were cut."""
        count = len(self._pairs)
        for client_w, server_w in list(self._pairs):
            for writer in (client_w, server_w):
                transport = writer.transport
                transport.abort()
        return count

    def stall(self) -> None:
        """Stop forwarding bytes (the connections stay open)."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    async def wait_connections(self, count: int, timeout: float = 30) -> None:
        async def _wait() -> None:
            async with self.connected:
                await self.connected.wait_for(lambda: self.connections_made >= count)

        await asyncio.wait_for(_wait(), timeout)

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
