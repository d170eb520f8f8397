"""The payment request: the message producers publish, validated strictly."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from schemas.cards import contains_card_number

MAX_BODY_BYTES = 64 * 1024
MAX_METADATA_PAIRS = 20
MAX_DESCRIPTION_CHARS = 500

_CURRENCY = re.compile(r"^[A-Z]{3}$")

ShortText = Annotated[str, StringConstraints(min_length=1, max_length=255)]


class PaymentRequest(BaseModel):
    """A request to charge ``amount`` minor units; ``payment_id`` is the idempotency key."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    payment_id: uuid.UUID = Field(strict=False)
    amount: int = Field(gt=0, le=10**12)
    currency: str
    merchant_id: ShortText
    payment_method: ShortText
    customer_id: ShortText | None = None
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION_CHARS)
    metadata: dict[str, str] | None = None

    @field_validator("payment_id", mode="before")
    @classmethod
    def _payment_id_is_a_string(cls, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError("payment_id must be a UUID string")
        return value

    @field_validator("currency")
    @classmethod
    def _currency_is_iso4217(cls, value: str) -> str:
        if not _CURRENCY.match(value):
            raise ValueError("currency must be three upper-case letters (ISO 4217)")
        return value

    @field_validator("payment_method", "customer_id", "merchant_id")
    @classmethod
    def _no_card_number_in_token(cls, value: str | None) -> str | None:
        if value is not None and contains_card_number(value):
            raise ValueError("looks like a card number; send a payment-method token instead")
        return value

    @field_validator("description")
    @classmethod
    def _no_card_number_in_description(cls, value: str | None) -> str | None:
        if value is not None and contains_card_number(value):
            raise ValueError("contains what looks like a card number")
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata_is_small_and_clean(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return value
        if len(value) > MAX_METADATA_PAIRS:
            raise ValueError(f"at most {MAX_METADATA_PAIRS} metadata pairs")
        for key, item in value.items():
            if len(key) > 40 or len(item) > 500:
                raise ValueError("metadata keys are at most 40 chars and values at most 500")
            if contains_card_number(item) or contains_card_number(key):
                raise ValueError(f"metadata[{key!r}] contains what looks like a card number")
        return value

    @property
    def key(self) -> str:
        """The payment id as the canonical lower-case string used everywhere."""
        return str(self.payment_id)

    def fingerprint(self) -> str:
        """What must not change between two messages with the same payment_id."""
        return f"{self.amount}:{self.currency}:{self.merchant_id}"

    def gateway_body(self) -> dict[str, Any]:
        """The JSON body of the gateway's ``POST /v1/charges``."""
        body: dict[str, Any] = {
            "amount": self.amount,
            "currency": self.currency,
            "payment_method": self.payment_method,
            "merchant_id": self.merchant_id,
        }
        if self.customer_id is not None:
            body["customer_id"] = self.customer_id
        if self.description is not None:
            body["description"] = self.description
        if self.metadata is not None:
            body["metadata"] = self.metadata
        return body

    def to_message(self) -> dict[str, Any]:
        """The JSON-ready body a producer publishes."""
        return self.model_dump(mode="json", exclude_none=True)
