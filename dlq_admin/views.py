"""Typed rows (``dlq_admin.rows``) into the API's response models (``schemas.dlq``)."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel

from dlq_admin.rows import AttemptRecord, Entry, FullEntry, PaymentRecord
from schemas.dlq import (
    AttemptView,
    DlqEntryDetail,
    DlqEntrySummary,
    ErrorDetail,
    MessageProperties,
    PaymentView,
    RoundView,
)
from schemas.outcome import ErrorInfo, PaymentStatus

ModelT = TypeVar("ModelT", bound=BaseModel)


def _from_attributes(model: type[ModelT], source: object, **computed: Any) -> ModelT:
    """``model`` from ``source``'s attributes of the same names, plus the ``computed`` fields
    whose shape differs from the row's (the rows keep the error as flat columns)."""
    values = {name: getattr(source, name) for name in model.model_fields if name not in computed}
    return model(**values, **computed)


def summary(entry: Entry) -> DlqEntrySummary:
    return _from_attributes(DlqEntrySummary, entry, error=error_detail(entry))


def error_detail(entry: Entry) -> ErrorDetail:
    return ErrorDetail(
        code=entry.error_code,
        message=entry.error_message,
        http_status=entry.http_status,
        exception_type=entry.exception_type,
    )


def round_view(entry: Entry) -> RoundView:
    return _from_attributes(RoundView, entry, error=error_detail(entry))


def payment_view(payment: PaymentRecord) -> PaymentView:
    last_error = None
    if payment.last_error_code:
        last_error = ErrorInfo(
            code=payment.last_error_code, message=payment.last_error_message or ""
        )
    return PaymentView(
        payment_id=payment.payment_id,
        status=PaymentStatus(payment.status),
        attempts=payment.attempts,
        gateway_charge_id=payment.gateway_charge_id,
        last_error=last_error,
        dead_letter_reason=payment.dead_letter_reason,
        updated_at=payment.updated_at,
    )


def attempt_view(attempt: AttemptRecord) -> AttemptView:
    return AttemptView.model_validate(attempt, from_attributes=True)


def body_value(text: str) -> tuple[Any, bool]:
    """The stored body as JSON if it parses (and True), else the text itself (and False)."""
    try:
        return orjson.loads(text), True
    except orjson.JSONDecodeError:
        return text, False


def detail(
    entry: FullEntry,
    chain: list[Entry],
    history: list[AttemptRecord],
    payment: PaymentRecord | None,
) -> DlqEntryDetail:
    """One entry whole, with its replay rounds, attempt history and current payment."""
    body, is_json = body_value(entry.body)
    replayed_body = body_value(entry.replayed_body)[0] if entry.replayed_body else None
    try:
        headers = orjson.loads(entry.headers)
    except orjson.JSONDecodeError:
        headers = {}
    return DlqEntryDetail(
        **summary(entry).model_dump(),
        body=body,
        body_is_json=is_json,
        body_bytes=entry.body_bytes,
        headers=headers if isinstance(headers, dict) else {},
        properties=MessageProperties(
            content_type=entry.content_type,
            message_id=entry.message_id,
            correlation_id=entry.correlation_id,
            reply_to=entry.reply_to,
        ),
        origin=entry.origin,
        replayed_body=replayed_body,
        replayed_as=[e.id for e in chain if e.replay_of == entry.id],
        rounds=[round_view(e) for e in chain],
        history=[attempt_view(a) for a in history],
        payment=payment_view(payment) if payment is not None else None,
    )
