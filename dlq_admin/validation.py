"""Validation of what callers hand the admin: edited replay bodies and list filters.

An edited body is validated exactly as the worker will validate it (``processor.decode``),
and may not change the ``payment_id`` (the idempotency key). Filters may not hold NUL
characters (PostgreSQL text cannot) and naive times are read as UTC.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from dlq_admin.errors import FieldProblem, InvalidInput
from dlq_admin.parse import clean
from dlq_admin.ports import EntryFilters
from processor.decode import Invalid, validate_payload
from schemas.payment import PaymentRequest


def validate_edit(payload: dict[str, Any], entry_payment_id: str | None) -> PaymentRequest:
    """Validate an edited body exactly as the worker will (``processor.decode``)."""
    result = validate_payload(payload)
    if isinstance(result, Invalid):
        raise InvalidInput(
            f"payload is not a valid payment request: {result.error.message}",
            _problems(payload) or [FieldProblem(("body", "payload"), result.error.message)],
            code="invalid_payload",
        )
    if entry_payment_id:
        try:
            original = str(uuid.UUID(entry_payment_id))
        except ValueError:
            original = None
        if original is not None and result.key != original:
            raise InvalidInput(
                f"payload.payment_id: must stay {original}; the payment_id is the idempotency "
                "key (publish a new payment instead)",
                [
                    FieldProblem(
                        ("body", "payload", "payment_id"), "must not change", "payment_id_changed"
                    )
                ],
                code="invalid_payload",
            )
    return result


def _problems(payload: dict[str, Any]) -> list[FieldProblem]:
    try:
        PaymentRequest.model_validate(payload)
    except ValidationError as exc:
        return [
            FieldProblem(
                ("body", "payload", *(str(p) if not isinstance(p, int) else p for p in e["loc"])),
                clean(str(e["msg"]), 300),
                str(e["type"]),
            )
            for e in exc.errors(include_input=False, include_url=False)[:20]
        ]
    return []


def no_nul(name: str, value: str | None) -> None:
    """Refuse a query parameter holding a NUL character."""
    if value is not None and "\x00" in value:
        raise InvalidInput(
            f"{name}: must not contain NUL characters",
            [FieldProblem(("query", name), "must not contain NUL characters")],
        )


def _aware(name: str, value: datetime | None) -> datetime | None:
    if value is None:
        return None
    try:
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    except (OverflowError, ValueError):
        raise InvalidInput(
            f"{name}: out of range", [FieldProblem(("query", name), "out of range")]
        ) from None


def checked_filters(filters: EntryFilters) -> EntryFilters:
    """``filters`` with its times in UTC; ``InvalidInput`` for NULs or ``since > until``."""
    no_nul("payment_id", filters.payment_id)
    no_nul("merchant_id", filters.merchant_id)
    no_nul("group", filters.fingerprint)
    since = _aware("since", filters.since)
    until = _aware("until", filters.until)
    if since is not None and until is not None and since > until:
        raise InvalidInput(
            "since must not be later than until",
            [FieldProblem(("query", "since"), "later than until")],
        )
    return EntryFilters(
        reason=filters.reason,
        status=filters.status,
        payment_id=filters.payment_id,
        merchant_id=filters.merchant_id,
        since=since,
        until=until,
        fingerprint=filters.fingerprint,
    )
