"""What the fake gateway answers: canned errors, the by-amount outcomes, charge validation.

Bodies follow the gateway HTTP contract (``{"error": {"type", "code", "message"}}``); no
message ever echoes the payment method.
"""

from __future__ import annotations

from typing import Any, Final

from processor.fake_gateway.state import StoredAnswer
from processor.fake_server import error_body

__all__ = [
    "BY_AMOUNT",
    "FAILURE",
    "MAX_KEY_LENGTH",
    "OUTAGE",
    "RATE_LIMITED",
    "TIMED_OUT",
    "error",
    "invalid",
    "validate_charge",
]

MAX_KEY_LENGTH: Final = 255


def error(status: int, error_type: str, code: str, message: str) -> StoredAnswer:
    return StoredAnswer(status, error_body(error_type, message, code=code))


def invalid(code: str, message: str) -> StoredAnswer:
    """A 400 ``invalid_request_error``: never stored, a later attempt is processed afresh."""
    return error(400, "invalid_request_error", code, message)


OUTAGE: Final = error(503, "api_error", "service_unavailable", "The gateway is unavailable.")
FAILURE: Final = error(503, "api_error", "service_unavailable", "Temporary failure, please retry.")
RATE_LIMITED: Final = error(
    429, "rate_limit_error", "rate_limited", "Too many requests, slow down."
)
TIMED_OUT: Final = error(
    504, "api_error", "gateway_timeout", "The card network did not answer in time."
)

_REQUEST: Final = "invalid_request_error"

BY_AMOUNT: Final[dict[int, tuple[StoredAnswer, bool]]] = {
    400: (invalid("parameter_invalid", "The request was rejected by the card network."), False),
    401: (error(401, "authentication_error", "invalid_api_key", "Invalid API key."), False),
    402: (error(402, "card_error", "card_declined", "Your card was declined."), True),
    403: (
        error(403, "permission_error", "forbidden", "This API key may not create charges."),
        False,
    ),
    404: (error(404, _REQUEST, "resource_missing", "No such payment method."), True),
    409: (error(409, _REQUEST, "conflict", "The charge conflicts with another."), True),
    422: (error(422, _REQUEST, "unprocessable", "Cannot process the charge."), True),
}
"""``amount % 1000`` -> (answer, stored for the key?), as Stripe stores final answers."""


def _looks_like_card_number(value: str) -> bool:
    digits = value.replace(" ", "").replace("-", "")
    return digits.isdigit() and 12 <= len(digits) <= 19


def _currency_ok(currency: object) -> bool:
    return (
        isinstance(currency, str)
        and len(currency) == 3
        and currency.isascii()
        and currency.isalpha()
        and currency.isupper()
    )


def validate_charge(body: object) -> tuple[StoredAnswer | None, dict[str, Any]]:
    """Check a charge body: (the 400 to answer, or ``None``; the body as a dict)."""
    if not isinstance(body, dict):
        return invalid("invalid_body", "The body must be a JSON object."), {}
    amount = body.get("amount")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        return invalid("invalid_amount", "amount must be a positive integer."), {}
    if not _currency_ok(body.get("currency")):
        return invalid("invalid_currency", "currency must be three upper-case letters."), {}
    payment_method = body.get("payment_method")
    if not isinstance(payment_method, str) or not payment_method:
        return invalid("invalid_payment_method", "payment_method must be a token."), {}
    if _looks_like_card_number(payment_method):
        return invalid(
            "invalid_payment_method", "payment_method must be a token, not a card number."
        ), {}
    merchant_id = body.get("merchant_id")
    if not isinstance(merchant_id, str) or not merchant_id:
        return invalid("invalid_merchant_id", "merchant_id must be a non-empty string."), {}
    for name in ("customer_id", "description"):
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            return invalid(f"invalid_{name}", f"{name} must be a string."), {}
    metadata = body.get("metadata")
    if metadata is not None and not (
        isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())
    ):
        return invalid("invalid_metadata", "metadata must map strings to strings."), {}
    return None, body
