"""How the fake Stripe decides a ``POST /v1/payment_intents``: validation, then the outcome.

Validation is what Stripe checks before executing (such 400s are not stored for the key);
the outcome follows the test payment methods and amounts the package docstring lists.
"""

from __future__ import annotations

import os
import time
from typing import Any

import orjson

from processor.fake_server import error_body
from processor.fake_stripe.state import Intent, StripeState
from retry.stripe_amounts import refusal

__all__ = ["create_intent", "error", "invalid_create"]


def error(status: int, type_: str, message: str, **fields: Any) -> tuple[int, bytes]:
    """(status, Stripe-shaped error body)."""
    return status, error_body(type_, message, **fields)


def invalid_create(params: dict[str, str]) -> tuple[int, bytes] | None:
    """The 400 Stripe answers before executing, or ``None`` when the create may go on."""
    for name in ("amount", "currency", "payment_method"):
        if not params.get(name):
            return error(
                400, "invalid_request_error", f"Missing required param: {name}.",
                code="parameter_missing", param=name,
            )  # fmt: skip
    amount = params["amount"]
    if not amount.isdigit() or int(amount) % 1000 == 422:
        return error(400, "invalid_request_error", "Invalid integer: amount", param="amount")
    refused = refusal(int(amount), params["currency"])
    if refused is not None:
        return error(400, "invalid_request_error", refused.message, code=refused.code)
    if params.get("confirm") != "true":
        return error(400, "invalid_request_error", "This server only creates with confirm=true.")
    return None


def _decline(amount: int, method: str) -> tuple[str, str] | None:
    """(code, decline_code) when this amount or test payment method is declined."""
    if amount % 1000 == 402 or method.startswith("pm_card_chargeDeclined"):
        return (
            "card_declined",
            "insufficient_funds" if "Insufficient" in method else "generic_decline",
        )
    if method == "pm_card_authenticationRequired":
        return "authentication_required", "authentication_required"
    return None


def create_intent(state: StripeState, params: dict[str, str]) -> tuple[int, bytes]:
    """Execute a validated create and record it in the ledger: (status, body)."""
    amount = int(params["amount"])
    method = params["payment_method"]
    intent_id = "pi_" + os.urandom(12).hex()
    metadata = {k[9:-1]: v for k, v in params.items() if k.startswith("metadata[")}
    body: dict[str, Any] = {
        "id": intent_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_received": 0,
        "currency": params["currency"],
        "capture_method": "automatic",
        "created": int(time.time()),
        "description": params.get("description"),
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "metadata": metadata,
        "payment_method": method,
        "status": "succeeded",
    }
    payment_id = metadata.get("payment_id", "")
    state.intents[intent_id] = Intent(intent_id, body, time.monotonic(), payment_id)
    decline = _decline(amount, method)
    if decline is not None:
        code, decline_code = decline
        message = "Your card was declined."
        body["status"] = "requires_payment_method"
        body["last_payment_error"] = {
            "type": "card_error", "code": code, "decline_code": decline_code, "message": message,
        }  # fmt: skip
        return error(
            402, "card_error", message, code=code, decline_code=decline_code, payment_intent=body
        )
    if method == "pm_sepa_debit" or method.startswith("pm_usBankAccount"):
        body["status"] = "processing"
    else:
        body["amount_received"] = amount
        body["latest_charge"] = "ch_" + os.urandom(12).hex()
    state.charges_by_payment[payment_id] = state.charges_by_payment.get(payment_id, 0) + 1
    return 200, orjson.dumps(body)
