"""Between protobuf messages and ``schemas`` models; validation stays with ``schemas``.

The generated message classes are untyped (they are produced at first use), so they are
``Any`` here and every conversion is spelled out field by field.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from processor.ports import PaymentSnapshot
from schemas.outcome import ErrorInfo, PaymentResult, PaymentStatus

_REQUIRED_TEXT = ("payment_id", "currency", "merchant_id", "payment_method")
_OPTIONAL_TEXT = ("customer_id", "description")


def payload_from_proto(request: Any) -> dict[str, Any]:
    """A ``ChargeRequest`` as the JSON payment request, ready for ``validate_payload``.

    Proto3 cannot tell an unset string from an empty one: an empty required field is left
    out, so validation reports it as missing ("merchant_id: Field required").
    """
    payload: dict[str, Any] = {"amount": int(request.amount)}
    for name in _REQUIRED_TEXT:
        value = str(getattr(request, name))
        if value:
            payload[name] = value
    for name in _OPTIONAL_TEXT:
        if request.HasField(name):
            payload[name] = str(getattr(request, name))
    if len(request.metadata):
        payload["metadata"] = {str(k): str(v) for k, v in request.metadata.items()}
    return payload


def status_to_proto(pb2: Any, status: PaymentStatus) -> int:
    return int(pb2.PaymentStatus.Value(f"PAYMENT_STATUS_{status.value.upper()}"))


def status_from_proto(pb2: Any, value: int) -> PaymentStatus:
    name = str(pb2.PaymentStatus.Name(value))
    return PaymentStatus(name.removeprefix("PAYMENT_STATUS_").lower())


def _error(pb2: Any, error: ErrorInfo | None) -> Any:
    return None if error is None else pb2.Error(code=error.code, message=error.message)


def _identity(pb2: Any, source: PaymentResult | PaymentSnapshot) -> dict[str, Any]:
    """The fields ``ChargeResult`` and ``Payment`` share, from either of their models."""
    return {
        "payment_id": source.payment_id,
        "status": status_to_proto(pb2, source.status),
        "attempts": source.attempts,
        "gateway_charge_id": source.gateway_charge_id,
    }


def result_to_proto(pb2: Any, result: PaymentResult) -> Any:
    message = pb2.ChargeResult(**_identity(pb2, result), error=_error(pb2, result.error))
    message.processed_at.FromDatetime(result.processed_at)
    return message


def payment_to_proto(pb2: Any, snapshot: PaymentSnapshot) -> Any:
    message = pb2.Payment(**_identity(pb2, snapshot), last_error=_error(pb2, snapshot.last_error))
    message.updated_at.FromDatetime(snapshot.updated_at)
    return message


def result_from_proto(pb2: Any, message: Any) -> PaymentResult:
    """A ``ChargeResult`` back as a ``PaymentResult`` (clients, tests, the benchmark)."""
    error = None
    if message.HasField("error"):
        error = ErrorInfo(code=str(message.error.code), message=str(message.error.message))
    return PaymentResult(
        payment_id=str(message.payment_id),
        status=status_from_proto(pb2, int(message.status)),
        attempts=int(message.attempts),
        gateway_charge_id=(
            str(message.gateway_charge_id) if message.HasField("gateway_charge_id") else None
        ),
        error=error,
        processed_at=message.processed_at.ToDatetime(tzinfo=UTC),
    )
