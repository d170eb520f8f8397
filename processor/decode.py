"""Turn a message body into a ``PaymentRequest`` or a clear, card-number-free reason why not."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from schemas.cards import redact_card_numbers
from schemas.outcome import ErrorInfo
from schemas.payment import MAX_BODY_BYTES, PaymentRequest

_JSON_TYPES = frozenset({"application/json", "text/json"})


@dataclass(frozen=True, slots=True)
class Invalid:
    error: ErrorInfo
    payment_id: str | None = None
    merchant_id: str | None = None


def decode_request(body: bytes, content_type: str | None) -> PaymentRequest | Invalid:
    """Parse and validate; never raises for bad input."""
    if content_type and content_type.split(";")[0].strip().lower() not in _JSON_TYPES:
        return Invalid(
            ErrorInfo(
                code="wrong_content_type",
                message=f"content_type must be application/json, got {content_type[:60]!r}",
            )
        )
    if len(body) > MAX_BODY_BYTES:
        return Invalid(
            ErrorInfo(
                code="body_too_large", message=f"body is {len(body)} bytes; limit {MAX_BODY_BYTES}"
            )
        )
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return Invalid(ErrorInfo(code="not_json", message=f"body is not JSON: {exc}"[:300]))
    return validate_payload(data)


def validate_payload(data: Any) -> PaymentRequest | Invalid:
    """Validate already-parsed JSON: the same rules for the worker and edit-and-replay."""
    if not isinstance(data, dict):
        return Invalid(ErrorInfo(code="schema_violation", message="body must be a JSON object"))
    payment_id = data.get("payment_id") if isinstance(data.get("payment_id"), str) else None
    merchant_id = data.get("merchant_id") if isinstance(data.get("merchant_id"), str) else None
    try:
        return PaymentRequest.model_validate(data)
    except ValidationError as exc:
        return Invalid(
            ErrorInfo(code="schema_violation", message=describe_validation_error(exc)),
            payment_id=_short(payment_id),
            merchant_id=_short(merchant_id),
        )


def describe_validation_error(exc: ValidationError) -> str:
    """``"amount: Input should be greater than 0; currency: ..."`` without echoing input."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False)[:5]:
        where = ".".join(str(loc) for loc in err["loc"]) or "body"
        # The location can echo input too: an unknown field's name or a metadata key.
        parts.append(redact_card_numbers(f"{where}: {err['msg']}"))
    return "; ".join(parts)[:500]


def _short(value: str | None) -> str | None:
    if value is None:
        return None
    return redact_card_numbers(value[:64])
