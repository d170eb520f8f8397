"""The gateway adapter: ``POST {GATEWAY_URL}/v1/charges`` (and the lookup
``GET /v1/charges?idempotency_key=``) over httpx.

With a hundred requests in flight, httpx's default transport spends more CPU per request
than the rest of the worker, so the adapter sends its requests through ``LeanTransport`` (an
httpx transport over asyncio and httptools, see ``lean_http``) and keeps httpx's API (respx
tests inject their own transport). Every httpx error is translated here into a
``GatewayAnswer``: the retry policy never sees an httpx type.
The adapter reports what happened on the wire (``wire_failure``: not connected, sent
without an answer, dropped); the policy decides whether that leaves the charge in doubt.

tenacity gives connection errors (nothing was sent, so nothing can have been charged) a
short, bounded in-process retry before the queue-level ladder takes over.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from processor.adapters.gateway_lookup import interpret_lookup, lookup_unavailable
from processor.adapters.lean_http import LeanTransport
from retry.policy import (
    Charged,
    Declined,
    GatewayAnswer,
    LookupAnswer,
    Rejected,
    StatusClass,
    Transient,
    TransientKind,
    classify_status,
    retry_after_seconds,
)
from schemas.cards import redact_card_numbers
from schemas.outcome import ErrorInfo
from schemas.payment import PaymentRequest

CONNECT_RETRIES = 2


def default_transport(max_connections: int) -> httpx.AsyncBaseTransport:
    """Keep-alive HTTP/1.1, sized for ``max_connections`` requests in flight."""
    return LeanTransport(max_connections)


class HttpGateway:
    """Sends charges straight to an httpx transport.

    ``httpx.AsyncClient`` adds cookie, auth, redirect and URL-merging work to every request;
    this adapter needs none of it, and with a hundred or more requests in flight that work is
    a noticeable share of the worker's CPU. Requests are still ``httpx.Request`` objects
    handled by an ``httpx.AsyncBaseTransport``, so respx and ``httpx.MockTransport`` work
    unchanged.
    """

    def __init__(
        self,
        base_url: str,
        timeout: float,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 100,
        connect_retries: int = CONNECT_RETRIES,
    ) -> None:
        self._transport = transport or default_transport(max_connections)
        self._url = httpx.URL(base_url.rstrip("/") + "/v1/charges")
        self._lookup_url = self._url
        self._timeout = timeout
        self._extensions = {"timeout": httpx.Timeout(timeout).as_dict()}
        self._connect_retries = connect_retries

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def _post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        request = httpx.Request(
            "POST", self._url, content=body, headers=headers, extensions=self._extensions
        )
        return await self._send(request)

    async def _send(self, request: httpx.Request) -> httpx.Response:
        # A guard over the whole exchange: the transport's timeouts are per socket read.
        async with asyncio.timeout(self._timeout * 2 + 1):
            response = await self._transport.handle_async_request(request)
            try:
                await response.aread()
            finally:
                await response.aclose()
        return response

    async def _post_with_connect_retries(
        self, body: bytes, headers: dict[str, str]
    ) -> httpx.Response:
        try:  # the fast path: no retry machinery while the gateway is reachable
            return await self._post(body, headers)
        except httpx.HTTPError as exc:
            if not _connect_failed(exc) or self._connect_retries < 1:
                raise
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(_connect_failed),
            stop=stop_after_attempt(self._connect_retries),
            wait=wait_exponential(multiplier=0.05, max=0.5),
            reraise=True,
        ):
            with attempt:
                return await self._post(body, headers)
        raise AssertionError("unreachable")  # pragma: no cover

    async def charge(
        self, request: PaymentRequest, traceparent: str | None = None
    ) -> GatewayAnswer:
        headers = {"Idempotency-Key": request.key, "Content-Type": "application/json"}
        if traceparent:
            headers["traceparent"] = traceparent
        try:
            response = await self._post_with_connect_retries(
                orjson.dumps(request.gateway_body()), headers
            )
        except (httpx.HTTPError, TimeoutError) as exc:
            kind = wire_failure(exc)
            return Transient(kind, ErrorInfo(code=_FAILURE_CODES[kind], message=_why(exc)))
        return interpret_response(response.status_code, response.content, response.headers)

    async def lookup(self, payment_id: str) -> LookupAnswer:
        """``GET /v1/charges?idempotency_key=<payment_id>``: did a charge with that key succeed?"""
        request = httpx.Request(
            "GET",
            self._lookup_url.copy_merge_params({"idempotency_key": payment_id}),
            extensions=self._extensions,
        )
        try:
            response = await self._send(request)
        except (httpx.HTTPError, TimeoutError) as exc:
            return lookup_unavailable("gateway_lookup_failed", _why(exc))
        return interpret_lookup(
            response.status_code, response.content, response.headers.get("retry-after")
        )


_FAILURE_CODES = {
    TransientKind.CONNECT_FAILED: "gateway_unreachable",
    TransientKind.TIMEOUT: "gateway_timeout",
    TransientKind.CONNECTION: "gateway_connection_lost",
}

_NOTHING_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
)
"""Errors raised before a byte of the request left: no connection, or none free."""


def wire_failure(exc: BaseException) -> TransientKind:
    """What a transport error says happened to the request (pure; exposed for tests).

    ``CONNECT_FAILED``: no connection, nothing sent. ``TIMEOUT``: sent (or possibly sent),
    no answer in time. ``CONNECTION``: the connection broke while the request was or may have
    been on the wire (a read error, the server closing mid-answer, a malformed answer).
    """
    if isinstance(exc, _NOTHING_SENT):
        return TransientKind.CONNECT_FAILED
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return TransientKind.TIMEOUT
    return TransientKind.CONNECTION


def _connect_failed(exc: BaseException) -> bool:
    """No connection was made, so nothing was sent: safe to try again at once."""
    return isinstance(exc, httpx.ConnectError)


def interpret_response(status: int, content: bytes, headers: Any) -> GatewayAnswer:
    """Turn an HTTP answer into a ``GatewayAnswer`` (pure; exposed for tests)."""
    body = _json(content)
    error = _error(body, status)
    match classify_status(status):
        case StatusClass.SUCCESS:
            charge_id = body.get("id") if isinstance(body, dict) else None
            if body.get("status") == "succeeded" and isinstance(charge_id, str):
                return Charged(charge_id)
            return Transient(
                TransientKind.UNEXPECTED_ANSWER,
                ErrorInfo(code="unexpected_answer", message=f"{status} without a succeeded charge"),
                http_status=status,
            )
        case StatusClass.DECLINED:
            return Declined(error)
        case StatusClass.REJECTED:
            return Rejected(status, error)
        case StatusClass.TRANSIENT:
            if status == 429:
                kind = TransientKind.RATE_LIMITED
            elif status in (401, 403):
                kind = TransientKind.GATEWAY_AUTH
            else:
                kind = TransientKind.SERVER_ERROR
            return Transient(
                kind,
                error,
                http_status=status,
                retry_after=retry_after_seconds(
                    headers.get("retry-after") if headers is not None else None
                ),
            )
    raise AssertionError(status)  # pragma: no cover


def _json(content: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(content) if content else {}
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _error(body: dict[str, Any], status: int) -> ErrorInfo:
    raw = body.get("error")
    if isinstance(raw, dict):
        code = str(raw.get("code") or raw.get("type") or f"http_{status}")
        message = str(raw.get("message") or "")
    else:
        code, message = f"http_{status}", ""
    return ErrorInfo(
        code=redact_card_numbers(code)[:64],
        message=redact_card_numbers(message or f"gateway answered {status}")[:500],
    )


def _why(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return redact_card_numbers(f"{type(exc).__name__}: {text}")[:300]
