"""A bare asyncio TCP server standing in for the gateway, for answers no HTTP server gives
(garbage, a connection dropped mid-request)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from processor.adapters.http_gateway import HttpGateway
from retry.policy import GatewayAnswer
from schemas.payment import PaymentRequest

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def charge_against(handle: Handler, request: PaymentRequest) -> GatewayAnswer:
    """Charge ``request`` through the default HttpGateway against a server running ``handle``."""
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = HttpGateway(f"http://127.0.0.1:{port}", 1.0)
    try:
        return await client.charge(request)
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()
