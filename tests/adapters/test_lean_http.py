"""The worker's HTTP transport against real sockets: keep-alive, bounds, framing, failures.

Each test runs a small asyncio server that answers the way a real gateway (or a broken
proxy in front of one) might, and checks what the transport does with it.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import trustme

from processor.adapters.lean_http import LeanTransport

OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'

Answer = Callable[[int, int, bytes], Awaitable[bytes | None]]
"""(connection number, request number on it, request bytes) -> response bytes, or None to
close the connection without answering."""


@dataclass
class Server:
    port: int
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    open_now: int = 0
    most_open: int = 0


async def read_request(reader: asyncio.StreamReader) -> bytes | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + await reader.readexactly(length)


@pytest.fixture
async def lean() -> AsyncIterator[Callable[..., LeanTransport]]:
    """Make transports; all are closed when the test ends."""
    made: list[LeanTransport] = []

    def make(*args: Any, **kwargs: Any) -> LeanTransport:
        made.append(LeanTransport(*args, **kwargs))
        return made[-1]

    yield make
    for transport in made:
        await transport.aclose()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    servers: list[asyncio.Server] = []

    async def start(answer: Answer, ssl_context: ssl.SSLContext | None = None) -> Server:
        state = Server(port=0)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            state.connections += 1
            number = state.connections
            state.open_now += 1
            state.most_open = max(state.most_open, state.open_now)
            try:
                on_connection = 0
                while True:
                    request = await read_request(reader)
                    if request is None:
                        return
                    on_connection += 1
                    state.requests.append(request)
                    response = await answer(number, on_connection, request)
                    if response is None:
                        return
                    writer.write(response)
                    await writer.drain()
                    if b"Connection: close" in response:
                        return
            finally:
                state.open_now -= 1
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ssl_context)
        servers.append(server)
        state.port = server.sockets[0].getsockname()[1]
        return state

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def always_ok(_connection: int, _number: int, _request: bytes) -> bytes:
    return OK


async def post(
    transport: LeanTransport, url: str, body: bytes = b"{}", **timeouts: float
) -> httpx.Response:
    extensions = {"timeout": httpx.Timeout(5.0, **timeouts).as_dict()}
    request = httpx.Request(
        "POST",
        url,
        content=body,
        headers={"Idempotency-Key": "k1", "Content-Type": "application/json"},
        extensions=extensions,
    )
    return await transport.handle_async_request(request)


async def test_sequential_requests_share_one_kept_alive_connection(serve, lean) -> None:
    server = await serve(always_ok)
    transport = lean(10)
    for _ in range(25):
        response = await post(transport, f"http://127.0.0.1:{server.port}/v1/charges")
        assert response.status_code == 200
        assert response.json() == {"ok": True}
    assert server.connections == 1
    assert len(server.requests) == 25


async def test_the_request_carries_host_length_headers_and_body(serve, lean) -> None:
    server = await serve(always_ok)
    transport = lean(1)
    await post(transport, f"http://127.0.0.1:{server.port}/v1/charges?x=1", b'{"amount":5}')
    head, body = server.requests[0].split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/charges?x=1 HTTP/1.1"
    assert f"Host: 127.0.0.1:{server.port}".encode() in lines
    assert b"Content-Length: 12" in lines
    assert b"Idempotency-Key: k1" in lines
    assert body == b'{"amount":5}'


async def test_concurrent_requests_never_open_more_than_max_connections(serve, lean) -> None:
    release = asyncio.Event()
    arrived = 0

    async def slow(_connection: int, _number: int, _request: bytes) -> bytes:
        nonlocal arrived
        arrived += 1
        if arrived >= 4:
            release.set()
        await release.wait()
        return OK

    server = await serve(slow)
    transport = lean(4)
    responses = await asyncio.gather(
        *(post(transport, f"http://127.0.0.1:{server.port}/") for _ in range(20))
    )
    assert [r.status_code for r in responses] == [200] * 20
    assert server.most_open == 4
    assert server.connections == 4


async def test_waiting_too_long_for_a_free_connection_is_a_pool_timeout(serve, lean) -> None:
    hold = asyncio.Event()
    busy = asyncio.Event()

    async def stuck(_connection: int, _number: int, _request: bytes) -> bytes:
        busy.set()
        await hold.wait()
        return OK

    server = await serve(stuck)
    transport = lean(1)
    url = f"http://127.0.0.1:{server.port}/"
    first = asyncio.create_task(post(transport, url))
    await busy.wait()  # the only connection is taken
    try:
        with pytest.raises(httpx.PoolTimeout):
            await post(transport, url, pool=0.1)
        hold.set()
        assert (await first).status_code == 200
    finally:
        hold.set()  # never leave the first request hanging


async def test_a_kept_alive_connection_dropped_unanswered_is_retried_on_a_new_one(
    serve, lean
) -> None:
    """The keep-alive race: the server closes an idle connection as our request goes out."""

    async def drops_second_request(_connection: int, number: int, _request: bytes) -> bytes | None:
        return None if number == 2 else OK

    server = await serve(drops_second_request)
    transport = lean(1)
    url = f"http://127.0.0.1:{server.port}/"
    assert (await post(transport, url)).status_code == 200
    assert (await post(transport, url)).status_code == 200
    assert server.connections == 2
    assert len(server.requests) == 3  # the dropped one was sent again, once


async def test_a_new_connection_dropped_unanswered_is_a_read_error_not_retried(serve, lean) -> None:
    async def never_answers(_connection: int, _number: int, _request: bytes) -> None:
        return None

    server = await serve(never_answers)
    transport = lean(1)
    with pytest.raises(httpx.ReadError):
        await post(transport, f"http://127.0.0.1:{server.port}/")
    assert len(server.requests) == 1


async def test_a_slow_answer_is_a_read_timeout_and_its_connection_is_not_reused(
    serve, lean
) -> None:
    async def slow_first(connection: int, _number: int, _request: bytes) -> bytes:
        if connection == 1:
            await asyncio.sleep(1)
        return OK

    server = await serve(slow_first)
    transport = lean(1)
    url = f"http://127.0.0.1:{server.port}/"
    with pytest.raises(httpx.ReadTimeout):
        await post(transport, url, read=0.1)
    assert (await post(transport, url)).status_code == 200
    assert server.connections == 2


async def test_chunked_answers_are_reassembled(serve, lean) -> None:
    async def chunked(_connection: int, _number: int, _request: bytes) -> bytes:
        return (
            b"HTTP/1.1 402 Payment Required\r\nTransfer-Encoding: chunked\r\n"
            b"Retry-After: 3\r\n\r\n"
            b'6\r\n{"a":1\r\n1\r\n}\r\n0\r\n\r\n'
        )

    server = await serve(chunked)
    transport = lean(1)
    response = await post(transport, f"http://127.0.0.1:{server.port}/")
    again = await post(transport, f"http://127.0.0.1:{server.port}/")
    assert response.status_code == 402
    assert response.json() == {"a": 1}
    assert response.headers["retry-after"] == "3"
    assert again.status_code == 402
    assert server.connections == 1


async def test_an_answer_delimited_by_closing_the_connection_is_read_whole(serve, lean) -> None:
    async def close_delimited(_connection: int, _number: int, _request: bytes) -> bytes:
        return b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{"id":"ch_1"}'

    server = await serve(close_delimited)
    transport = lean(1)
    first = await post(transport, f"http://127.0.0.1:{server.port}/")
    second = await post(transport, f"http://127.0.0.1:{server.port}/")
    assert first.json() == {"id": "ch_1"}
    assert second.json() == {"id": "ch_1"}
    assert server.connections == 2  # "Connection: close" is honoured


async def test_garbage_instead_of_http_is_a_protocol_error(serve, lean) -> None:
    async def garbage(_connection: int, _number: int, _request: bytes) -> bytes:
        return b"garbage\r\n\r\n"

    server = await serve(garbage)
    transport = lean(1)
    with pytest.raises(httpx.RemoteProtocolError):
        await post(transport, f"http://127.0.0.1:{server.port}/")


async def test_a_refused_connection_is_a_connect_error(lean) -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    transport = lean(1)
    with pytest.raises(httpx.ConnectError):
        await post(transport, f"http://127.0.0.1:{port}/")


async def test_https_verifies_the_gateway_certificate(serve, lean) -> None:
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(server_context)
    server = await serve(always_ok, ssl_context=server_context)

    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)
    transport = lean(2, ssl_context=trusting)
    response = await post(transport, f"https://localhost:{server.port}/v1/charges")
    assert response.status_code == 200
    assert response.json() == {"ok": True}

    untrusting = lean(1)  # the system's CAs do not know this one
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        await post(untrusting, f"https://localhost:{server.port}/v1/charges")


async def test_unsupported_schemes_are_refused(lean) -> None:
    with pytest.raises(httpx.UnsupportedProtocol):
        await post(lean(1), "ftp://127.0.0.1/")
