"""A lean HTTP/1.1 keep-alive transport for httpx: one asyncio protocol per connection.

The worker sends one small POST per payment to one host, a hundred or more at a time. At
that concurrency general-purpose transports (httpcore, or httpx over aiohttp's pool) spend
much of the worker's CPU on features this job does not use (``make bench`` shows the cost
per payment). This transport does only what that job needs, with httptools (llhttp, the
parser of Node.js and uvicorn) doing the parsing in C:

* a pool of keep-alive connections per origin, at most ``max_connections`` open, waiting
  up to the pool timeout for a free one;
* the request written in one ``write`` (head and body), the response parsed as it arrives
  (``Content-Length``, chunked or close-delimited bodies);
* httpx's timeout extension honoured: ``connect`` for the TCP/TLS set-up, ``read`` for
  the response to arrive, ``pool`` for a free connection;
* errors raised as httpx's own exceptions (``ConnectError``, ``ConnectTimeout``,
  ``ReadTimeout``, ``ReadError``, ``RemoteProtocolError``), so callers see one error
  vocabulary whatever the transport.

A keep-alive connection the server closed while it sat idle is detected when the server's
FIN arrives (the connection leaves the pool). When a reused connection dies before a single
byte of the answer came back, the request is sent once more on a new connection: the
server closed it before reading our request (the race every keep-alive client has), and
the gateway's ``Idempotency-Key`` makes a second delivery harmless in any case.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Iterable
from typing import cast

import httptools
import httpx

_Origin = tuple[str, str, int]


class _NothingReceived(httpx.ReadError):
    """The connection ended before a single byte of the answer arrived."""


_DEFAULT_PORTS = {"http": 80, "https": 443}


class _Answer:
    """One response being parsed: the httptools callbacks fill it in."""

    __slots__ = ("body", "complete", "head_done", "headers", "started", "status")

    def __init__(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.started = False
        self.head_done = False
        self.complete = False

    def ends_with_connection(self) -> bool:
        """No Content-Length and not chunked: the body runs until the server closes."""
        names = {name.lower() for name, _ in self.headers}
        return b"content-length" not in names and b"transfer-encoding" not in names


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection; a request at a time (no pipelining)."""

    def __init__(self, origin: _Origin) -> None:
        self.origin = origin
        self._transport: asyncio.Transport | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._answer: _Answer | None = None
        self._done: asyncio.Future[None] | None = None
        self.closed = False

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._parser is None:  # bytes nobody asked for: the connection is unusable
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # pragma: no cover - we never ask to upgrade
            self._fail(httpx.RemoteProtocolError("unexpected protocol upgrade"))
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"malformed HTTP response: {exc}"))

    def eof_received(self) -> bool | None:
        answer, parser = self._answer, self._parser
        if (
            answer is not None
            and parser is not None
            and answer.head_done
            and not answer.complete
            and answer.ends_with_connection()
        ):
            self.on_message_complete()  # a close-delimited body is whole at EOF
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._done is not None and not self._done.done():
            if self._answer is None or not self._answer.started:
                why = "server disconnected without sending a response"
                self._done.set_exception(_NothingReceived(why if exc is None else str(exc)))
            else:
                why = "server closed the connection before the answer was complete"
                self._done.set_exception(httpx.ReadError(why if exc is None else str(exc)))

    # -- httptools callbacks ---------------------------------------------------------------
    def on_message_begin(self) -> None:
        assert self._answer is not None
        self._answer.started = True

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self._answer is not None
        self._answer.headers.append((name, value))

    def on_headers_complete(self) -> None:
        assert self._answer is not None
        self._answer.head_done = True

    def on_body(self, body: bytes) -> None:
        assert self._answer is not None
        self._answer.body.append(body)

    def on_message_complete(self) -> None:
        answer, done = self._answer, self._done
        assert answer is not None
        assert done is not None
        assert self._parser is not None
        answer.status = self._parser.get_status_code()
        answer.complete = True
        if not self._parser.should_keep_alive():
            self.close()
        if not done.done():
            done.set_result(None)

    # -- use -------------------------------------------------------------------------------
    async def exchange(self, head: bytes, body: bytes, read_timeout: float | None) -> _Answer:
        """Send one request and wait for its whole answer."""
        transport = self._transport
        if transport is None or self.closed or transport.is_closing():
            raise _NothingReceived("connection closed")
        answer = _Answer()
        self._answer = answer
        self._parser = httptools.HttpResponseParser(self)
        self._done = asyncio.get_running_loop().create_future()
        transport.writelines((head, body))
        try:
            async with asyncio.timeout(read_timeout):
                await self._done
        except TimeoutError as exc:
            self.close()
            raise httpx.ReadTimeout("timed out waiting for the gateway's answer") from exc
        except BaseException:
            self.close()  # cancelled or failed half-way: the connection's state is unknown
            raise
        finally:
            self._parser = None
            self._done = None
        return answer

    def _fail(self, exc: Exception) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_exception(exc)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()


class LeanTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 with keep-alive, at most ``max_connections`` open per transport."""

    def __init__(
        self,
        max_connections: int = 100,
        *,
        ssl_context: ssl.SSLContext | None = None,
        connect_timeout: float | None = 5.0,
    ) -> None:
        self._ssl = ssl_context
        self._default_connect_timeout = connect_timeout
        self._idle: dict[_Origin, deque[_Connection]] = {}
        self._slots = asyncio.Semaphore(max_connections)
        self._open: set[_Connection] = set()
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise httpx.ConnectError("transport closed", request=request)
        url = request.url
        scheme = url.scheme
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}", request=request)
        origin: _Origin = (scheme, url.host, url.port or _DEFAULT_PORTS[scheme])
        timeouts = request.extensions.get("timeout", {})
        body = await request.aread()
        head = _head(request, body)
        try:
            async with asyncio.timeout(timeouts.get("pool")):
                await self._slots.acquire()
        except TimeoutError as exc:
            raise httpx.PoolTimeout("no free connection", request=request) from exc
        try:
            answer = await self._send(origin, head, body, timeouts, request)
        finally:
            self._slots.release()
        return httpx.Response(
            answer.status,
            headers=answer.headers,
            content=b"".join(answer.body),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def _send(
        self,
        origin: _Origin,
        head: bytes,
        body: bytes,
        timeouts: dict[str, float | None],
        request: httpx.Request,
    ) -> _Answer:
        read_timeout = timeouts.get("read")
        connection = self._idle_connection(origin)
        if connection is not None:
            try:
                return await self._exchange_on(connection, head, body, read_timeout)
            except _NothingReceived:
                pass  # the server dropped a kept-alive connection unanswered: send once more
        connection = await self._connect(origin, timeouts.get("connect"), request)
        return await self._exchange_on(connection, head, body, read_timeout)

    async def _exchange_on(
        self, connection: _Connection, head: bytes, body: bytes, read_timeout: float | None
    ) -> _Answer:
        """One exchange; the connection goes back to the pool after it, or is dropped."""
        try:
            answer = await connection.exchange(head, body, read_timeout)
        except BaseException:
            self._forget(connection)
            raise
        self._release(connection)
        return answer

    def _idle_connection(self, origin: _Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if not connection.closed:
                return connection
            self._open.discard(connection)
        return None

    async def _connect(
        self, origin: _Origin, connect_timeout: float | None, request: httpx.Request
    ) -> _Connection:
        scheme, host, port = origin
        context: ssl.SSLContext | None = None
        if scheme == "https":
            context = self._ssl or ssl.create_default_context()
        loop = asyncio.get_running_loop()
        if connect_timeout is None:
            connect_timeout = self._default_connect_timeout
        try:
            async with asyncio.timeout(connect_timeout):
                _, connection = await loop.create_connection(
                    lambda: _Connection(origin),
                    host,
                    port,
                    ssl=context,
                    server_hostname=host if context is not None else None,
                )
        except TimeoutError as exc:
            why = f"connecting to {host}:{port} timed out"
            raise httpx.ConnectTimeout(why, request=request) from exc
        except OSError as exc:
            why = f"cannot connect to {host}:{port}: {exc}"
            raise httpx.ConnectError(why, request=request) from exc
        self._open.add(connection)
        return connection

    def _release(self, connection: _Connection) -> None:
        if connection.closed or self._closed:
            self._forget(connection)
            return
        self._idle.setdefault(connection.origin, deque()).append(connection)

    def _forget(self, connection: _Connection) -> None:
        connection.close()
        self._open.discard(connection)

    async def aclose(self) -> None:
        self._closed = True
        for connection in list(self._open):
            connection.close()
        self._open.clear()
        self._idle.clear()


def _head(request: httpx.Request, body: bytes) -> bytes:
    """The request line and headers, ready to write."""
    url = request.url
    target = url.raw_path or b"/"
    lines = [b"%s %s HTTP/1.1" % (request.method.encode("ascii"), target)]
    has_host = has_length = False
    for name, value in _raw_headers(request.headers.raw):
        lower = name.lower()
        if lower == b"host":
            has_host = True
        elif lower == b"content-length":
            has_length = True
        elif lower == b"transfer-encoding":
            continue  # the body is sent whole, with a Content-Length
        lines.append(name + b": " + value)
    if not has_host:
        lines.insert(1, b"Host: " + url.netloc)
    if not has_length and (body or request.method in ("POST", "PUT", "PATCH")):
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _raw_headers(raw: Iterable[tuple[bytes, bytes]]) -> Iterable[tuple[bytes, bytes]]:
    for name, value in raw:
        if b"\r" in value or b"\n" in value or b"\r" in name or b"\n" in name:
            raise httpx.LocalProtocolError("header contains a line break")
        yield name, value
