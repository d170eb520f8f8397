"""Outcomes, results and events: what payproc says about a payment once it has decided."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer


class PaymentStatus(StrEnum):
    """Lifecycle of a payment row, as ``GET /payments/{payment_id}`` reports it."""

    PENDING = "pending"
    PROCESSING = "processing"
    RETRYING = "retrying"
    UNKNOWN = "unknown"
    """The last attempt's answer was lost and no lookup could tell yet whether the gateway
    charged: not final, never announced as failed; the reconciler settles it."""
    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    DEAD_LETTERED = "dead_lettered"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {PaymentStatus.SUCCEEDED, PaymentStatus.DECLINED, PaymentStatus.DEAD_LETTERED}
)


class ParkReason(StrEnum):
    """Why a message was parked in the DLQ (README, "Why payments get parked")."""

    RETRIES_EXHAUSTED = "retries_exhausted"
    GATEWAY_REJECTED = "gateway_rejected"
    INVALID_MESSAGE = "invalid_message"
    POISON = "poison"
    OUTCOME_UNKNOWN = "outcome_unknown"
    """The gateway may have charged and could not say: never replayed until a lookup settles it."""


class ErrorInfo(BaseModel):
    """A short, card-number-free error: a machine ``code`` and a human ``message``."""

    model_config = ConfigDict(frozen=True)

    code: str
    message: str


class PaymentResult(BaseModel):
    """The body of a payment event on ``N.events`` and of an RPC reply."""

    model_config = ConfigDict(frozen=True)

    payment_id: str
    status: PaymentStatus
    attempts: int
    gateway_charge_id: str | None = None
    error: ErrorInfo | None = None
    processed_at: datetime
    reconciled: bool = False
    """True when the outcome was settled by a gateway lookup after the charge's own answer
    was lost; serialised only when true, so other outcomes keep their shape."""

    @model_serializer(mode="wrap")
    def _drop_unreconciled(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if not self.reconciled:
            data.pop("reconciled", None)
        return data


class RetryScheduled(BaseModel):
    """Body of the ``payment.retry_scheduled`` event."""

    payment_id: str
    status: str = "retry_scheduled"
    attempts: int
    delay_seconds: float
    error: ErrorInfo
    processed_at: datetime
