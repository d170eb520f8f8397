"""Reading the answer of the charge lookup, ``GET /v1/charges?idempotency_key=<payment_id>``.

The gateway answers ``200 {"object": "list", "data": [charge…]}``; a charge is
``{"id", "status": "succeeded" | "failed", …}`` and ``data: []`` means no charge was made with
the key. Anything else (5xx, 429, a timeout, an answer that cannot be read, a charge still
pending) means the gateway cannot say now: ``LookupUnavailable``, never a guess.
"""

from __future__ import annotations

from typing import Any

import orjson

from retry.policy import (
    LookupAnswer,
    LookupCharged,
    LookupNoCharge,
    LookupUnavailable,
    retry_after_seconds,
)
from schemas.cards import redact_card_numbers
from schemas.outcome import ErrorInfo

_SETTLED_WITHOUT_CHARGE = frozenset({"failed", "canceled", "cancelled"})


def lookup_unavailable(code: str, message: str) -> LookupUnavailable:
    return LookupUnavailable(ErrorInfo(code=code, message=redact_card_numbers(message)[:300]))


def interpret_lookup(status: int, content: bytes, retry_after: str | None = None) -> LookupAnswer:
    """Turn the lookup's HTTP answer into a ``LookupAnswer`` (pure; exposed for tests).

    A 429 is marked ``rate_limited`` (with its ``Retry-After``): lookups count against the
    gateway's rate limit like charges, and the sender slows down for both."""
    if status == 429:
        return LookupUnavailable(
            ErrorInfo(code="gateway_lookup_rate_limited", message="lookup answered 429"),
            rate_limited=True,
            retry_after=retry_after_seconds(retry_after),
        )
    if status != 200:
        return lookup_unavailable("gateway_lookup_failed", f"lookup answered {status}")
    charges = _charges(content)
    if charges is None:
        return lookup_unavailable("gateway_lookup_unreadable", "lookup answer is not a list")
    for charge in charges:
        charge_id = charge.get("id")
        if charge.get("status") == "succeeded" and isinstance(charge_id, str) and charge_id:
            return LookupCharged(charge_id)
    if all(charge.get("status") in _SETTLED_WITHOUT_CHARGE for charge in charges):
        return LookupNoCharge()
    return lookup_unavailable("gateway_charge_pending", "a charge with the key is not settled")


def _charges(content: bytes) -> list[dict[str, Any]] | None:
    try:
        body = orjson.loads(content) if content else None
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict) or body.get("object") != "list":
        return None
    data = body.get("data")
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        return None
    return data
