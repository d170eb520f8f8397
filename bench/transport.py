"""The gateway adapter's HTTP transport under concurrency: ``python -m bench.transport``.

Compares httpx's default transport with ``LeanTransport`` (what ``HttpGateway`` ships)
against the bundled fake gateway on loopback, with 1 and 100 requests in flight: requests/s
and the client's CPU per request (the figure that matters on a CPU-bound worker).
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
import uuid

import httpx

from processor.adapters.http_gateway import HttpGateway, default_transport
from schemas.payment import PaymentRequest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _rate(
    url: str, transport: httpx.AsyncBaseTransport, count: int, in_flight: int
) -> tuple[float, float]:
    """(requests/s, client CPU microseconds per request)."""
    gateway = HttpGateway(url, 5, transport=transport, max_connections=in_flight)
    requests = [
        PaymentRequest.model_validate(
            {
                "payment_id": str(uuid.uuid4()),
                "amount": 5,
                "currency": "EUR",
                "merchant_id": "m",
                "payment_method": "pm",
            }
        )
        for _ in range(count)
    ]
    gate = asyncio.Semaphore(in_flight)

    async def one(request: PaymentRequest) -> None:
        async with gate:
            await gateway.charge(request)

    started, cpu_started = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(r) for r in requests))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    await gateway.aclose()
    return count / elapsed, cpu / count * 1e6


async def main() -> None:
    port = _free_port()
    server = subprocess.Popen(  # noqa: S603, ASYNC220 - our own module, started once
        [sys.executable, "-m", "processor", "fake-gateway", "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(100):
                try:
                    await client.get(url + "/healthz")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
        for in_flight, count in ((1, 1500), (100, 3000)):
            plain, plain_cpu = await _rate(
                url,
                httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=in_flight)),
                count,
                in_flight,
            )
            lean, lean_cpu = await _rate(url, default_transport(in_flight), count, in_flight)
            print(
                f"{in_flight:>3} in flight: httpx default transport {plain:,.0f} req/s "
                f"({plain_cpu:,.0f} us CPU each); LeanTransport {lean:,.0f} req/s "
                f"({lean_cpu:,.0f} us CPU each): {lean / plain:.1f}x"
            )
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    asyncio.run(main())
