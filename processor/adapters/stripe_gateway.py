"""The Stripe adapter: a charge is a PaymentIntent created and confirmed in one request.

Built on Stripe's official library (``stripe.StripeClient``, async over httpx) with the
library's own network retries off: payproc's retry ladder decides when to try again. Every
attempt of a payment sends the same parameters with ``Idempotency-Key: <payment_id>``, so
Stripe charges it at most once and answers a repeat with its stored answer
(``Idempotent-Replayed: true``).

This module only observes: it turns what the library returned or raised into plain facts
(``retry.stripe_mapping.StripeIntent`` / ``StripeFailure``) and lets the mapping table decide
what they mean. Amounts Stripe would refuse are refused before any call
(``retry.stripe_amounts``).

Lookup (did Stripe charge this payment?):

* Within Stripe's idempotency window (keys are kept at least 24 hours,
  ``idempotency_ttl``), the lookup re-sends the same create request with the same key. Stripe
  answers with what it stored for the key and cannot charge twice; if the first request never
  reached Stripe, this one is the charge, which is what the payment asked for. This needs the
  request's parameters, so it works for payments this process charged recently.
* Otherwise it searches PaymentIntents by ``metadata['payment_id']``. Stripe's search index
  is not read-after-write: data is searchable in less than a minute under normal operating
  conditions and can lag up to an hour during incidents, so an empty result for a charge
  attempted moments ago is not proof. That is acceptable here because inside the window a
  blind retry with the key is still answered from Stripe's idempotency store, and past the
  window (where the lookup matters) the charge is hours old.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import httpx
import stripe

from retry.policy import (
    Charged,
    GatewayAnswer,
    LookupAnswer,
    LookupUnavailable,
    Rejected,
    Transient,
    TransientKind,
    retry_after_seconds,
)
from retry.stripe_amounts import refusal
from retry.stripe_mapping import (
    StripeFact,
    StripeFailure,
    StripeIntent,
    WireFault,
    answer_for,
    lookup_answer,
    search_answer,
)
from schemas.outcome import ErrorInfo
from schemas.payment import PaymentRequest

log = logging.getLogger("payproc.stripe")
logging.getLogger("stripe").setLevel(logging.WARNING)  # one INFO line per request otherwise

STRIPE_API_BASE = "https://api.stripe.com"
STRIPE_IDEMPOTENCY_TTL = 86_400.0
"""Stripe removes idempotency keys once they are at least 24 hours old."""
RECENT_REQUESTS = 20_000
"""Requests remembered for the idempotent re-send lookup (oldest forgotten first)."""
AUTH_LOG_INTERVAL = 30.0


class StripeGateway:
    """``Gateway`` and ``ChargeLookup`` over Stripe's PaymentIntents API."""

    def __init__(
        self,
        api_key: str,
        *,
        timeout: float,
        api_base: str = STRIPE_API_BASE,
        idempotency_ttl: float = STRIPE_IDEMPOTENCY_TTL,
    ) -> None:
        self._http = stripe.HTTPXClient(timeout=timeout)
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base.rstrip("/")},
            http_client=self._http,
            max_network_retries=0,
        )
        self._guard = timeout * 2 + 1
        self._ttl = idempotency_ttl
        self._recent: OrderedDict[str, tuple[PaymentRequest, float]] = OrderedDict()
        self._auth_logged_at = -AUTH_LOG_INTERVAL

    def __repr__(self) -> str:  # the key stays out of reprs and tracebacks
        return "StripeGateway(api_key=***)"

    async def aclose(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]

    async def charge(
        self, request: PaymentRequest, traceparent: str | None = None
    ) -> GatewayAnswer:
        refused = refusal(request.amount, request.currency)
        if refused is not None:
            return Rejected(
                400,
                ErrorInfo(
                    code=refused.code, message=f"refused before calling Stripe: {refused.message}"
                ),
            )
        self._remember(request)
        fact = await self._send(request, traceparent)
        answer = answer_for(fact)
        if not isinstance(answer, Transient):
            self._recent.pop(request.key, None)  # final: no lookup will be needed
        elif answer.kind is TransientKind.GATEWAY_AUTH:
            self._log_auth_failure(fact)
        return answer

    async def lookup(self, payment_id: str) -> LookupAnswer:
        recent = self._recent.get(payment_id)
        if recent is not None and time.time() - recent[1] < self._ttl:
            return lookup_answer(await self._send(recent[0], None))
        return await self._search(payment_id)

    async def _send(self, request: PaymentRequest, traceparent: str | None) -> StripeFact:
        fact = await self._create(request, traceparent)
        if isinstance(fact, StripeIntent) and fact.replayed and fact.status == "processing":
            fact = await self._current(fact)
        return fact

    async def _create(self, request: PaymentRequest, traceparent: str | None) -> StripeFact:
        options: stripe.RequestOptions = {"idempotency_key": request.key}
        if traceparent:
            options["headers"] = {"traceparent": traceparent}
        try:
            async with asyncio.timeout(self._guard):
                intent = await self._client.v1.payment_intents.create_async(
                    create_params(request),  # type: ignore[arg-type]
                    options,
                )
        except stripe.StripeError as exc:
            return failure_fact(exc)
        except TimeoutError:
            return StripeFailure(
                "APIConnectionError", message="no answer in time", wire=WireFault.TIMED_OUT
            )
        return intent_fact(intent)

    async def _current(self, stored: StripeIntent) -> StripeFact:
        """A replayed ``processing`` answer is as old as the first request: read the intent
        as it is now (it may have settled since)."""
        try:
            async with asyncio.timeout(self._guard):
                intent = await self._client.v1.payment_intents.retrieve_async(stored.id)
        except (stripe.StripeError, TimeoutError):
            return stored
        return intent_fact(intent)

    async def _search(self, payment_id: str) -> LookupAnswer:
        query = f"metadata['payment_id']:'{payment_id}'"
        try:
            async with asyncio.timeout(self._guard):
                found = await self._client.v1.payment_intents.search_async(
                    {"query": query, "limit": 10}
                )
        except (stripe.StripeError, TimeoutError) as exc:
            fact = (
                failure_fact(exc)
                if isinstance(exc, stripe.StripeError)
                else StripeFailure("APIConnectionError", wire=WireFault.TIMED_OUT)
            )
            answer = answer_for(fact)
            error = answer.error if not isinstance(answer, Charged) else None
            return LookupUnavailable(
                error or ErrorInfo(code="lookup_failed", message="search failed")
            )
        return search_answer([intent_fact(intent) for intent in found.data])

    def _remember(self, request: PaymentRequest) -> None:
        if request.key in self._recent:
            self._recent.move_to_end(request.key)
            return
        self._recent[request.key] = (request, time.time())
        while len(self._recent) > RECENT_REQUESTS:
            self._recent.popitem(last=False)

    def _log_auth_failure(self, fact: StripeFact) -> None:
        now = time.monotonic()
        if now - self._auth_logged_at < AUTH_LOG_INTERVAL:
            return
        self._auth_logged_at = now
        status = fact.http_status if isinstance(fact, StripeFailure) else None
        if status == 403:
            what = "the API key lacks permission to create PaymentIntents (403)"
        else:
            what = "Stripe does not accept the API key (401)"
        log.error(
            "Stripe refuses our credentials: %s. Check PAYPROC_STRIPE_API_KEY (a secret key, "
            "or a restricted key with PaymentIntents write). Payments are retried, never "
            "parked for this.",
            what,
        )


def create_params(request: PaymentRequest) -> dict[str, Any]:
    """The form parameters of ``POST /v1/payment_intents`` (create and confirm in one).

    The same request always gives the same parameters: Stripe compares them when the key is
    used again. ``customer_id`` is payproc's merchant-side id, not a Stripe ``cus_`` id, so it
    travels in the metadata.
    """
    metadata = dict(request.metadata or {})
    if request.customer_id is not None:
        metadata["customer_id"] = request.customer_id
    metadata["payment_id"] = request.key
    metadata["merchant_id"] = request.merchant_id
    params: dict[str, Any] = {
        "amount": request.amount,
        "currency": request.currency.lower(),
        "payment_method": request.payment_method,
        "confirm": True,
        "off_session": True,
        "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
        "metadata": metadata,
    }
    if request.description is not None:
        params["description"] = request.description
    return params


def intent_fact(intent: Any) -> StripeIntent:
    """The facts of a PaymentIntent the library returned."""
    data: dict[str, Any] = intent.to_dict()
    latest = data.get("latest_charge")
    if isinstance(latest, dict):  # expanded
        latest = latest.get("id")
    raw_error = data.get("last_payment_error")
    error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
    response = getattr(intent, "last_response", None)
    headers = _lower(response.headers if response is not None else None)
    return StripeIntent(
        id=str(data.get("id")),
        status=str(data.get("status")),
        latest_charge=_text(latest),
        code=_text(error.get("code")),
        decline_code=_text(error.get("decline_code")),
        message=_text(error.get("message")),
        cancellation_reason=_text(data.get("cancellation_reason")),
        replayed=headers.get("idempotent-replayed") == "true",
    )


def failure_fact(exc: stripe.StripeError) -> StripeFailure:
    """The facts of an error the library raised (an error answer or a network fault)."""
    headers = _lower(exc.headers)
    body = exc.json_body if isinstance(exc.json_body, dict) else {}
    raw = body.get("error")
    error: dict[str, Any] = raw if isinstance(raw, dict) else {}
    should = headers.get("stripe-should-retry")
    return StripeFailure(
        error_class=type(exc).__name__,
        http_status=exc.http_status,
        error_type=_text(error.get("type")),
        code=_text(error.get("code")) or exc.code,
        decline_code=_text(error.get("decline_code")),
        message=_text(error.get("message")) or _first_line(exc.user_message or str(exc)),
        should_retry=None if should is None else should.strip().lower() == "true",
        retry_after=retry_after_seconds(headers.get("retry-after")),
        wire=_wire(exc) if isinstance(exc, stripe.APIConnectionError) else None,
    )


def _wire(exc: BaseException) -> WireFault:
    cause = exc.__cause__
    if isinstance(cause, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return WireFault.NOT_SENT
    if isinstance(cause, httpx.TimeoutException):
        return WireFault.TIMED_OUT
    return WireFault.DROPPED


def _lower(headers: Mapping[str, str] | None) -> dict[str, str]:
    return {key.lower(): value for key, value in (headers or {}).items()}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""
