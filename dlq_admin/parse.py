"""Turn one message from ``N.dlq`` into a ``NewEntry``: pure, and never raises for bad input.

Two kinds of message arrive:

* parked by a worker: ``x-payproc-reason`` and friends (``schemas.headers``) say why, and
  ``x-payproc-park-id`` is unique per parking: the de-duplication key;
* dead-lettered by the broker itself (the quorum delivery limit of ``N.requests`` was reached
  because the message kept crashing workers): no reason header, but an ``x-death`` whose first
  (most recent) entry has reason ``delivery_limit`` (or ``rejected``) -> reason ``poison``; the
  key is a hash of the body and that ``x-death`` entry (queue, reason, time, count), which a
  redelivery of the same DLQ message does not change.

Everything stored is cleaned first: card-number look-alikes masked again (the worker already
did; defense in depth), NUL characters replaced (PostgreSQL text cannot hold them), texts cut
to their column sizes, and non-UTF-8 bodies decoded with replacement characters.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson

from dlq_admin.ports import NewEntry, RawMessage
from schemas import headers as h
from schemas.cards import redact_card_numbers
from schemas.outcome import ParkReason

MAX_STORED_BODY_CHARS = 1_000_000
_REASONS = {r.value: r for r in ParkReason}
_IGNORED_FOR_HASH = frozenset({h.BROKER_DELIVERY_COUNT})


def clean(text: str, limit: int | None = None) -> str:
    """Mask card numbers, replace NULs, cut to ``limit`` characters."""
    text = redact_card_numbers(text.replace("\x00", "\ufffd"))
    return text if limit is None else text[:limit]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float | Decimal):
        return str(value)
    return None


def _short(value: Any, limit: int) -> str | None:
    text = _text(value)
    if text is None or not text.strip():
        return None
    return clean(text.strip(), limit)


def _int(value: Any, low: int, high: int) -> int | None:
    if isinstance(value, bool):
        return None
    number: int | None = None
    if isinstance(value, int):
        number = value
    else:
        text = _text(value)
        if text is not None:
            try:
                number = int(text.strip())
            except ValueError:
                return None
    if number is None or not low <= number <= high:
        return None
    return number


def _when(value: Any) -> datetime | None:
    try:
        if isinstance(value, datetime):
            stamp = value
        else:
            text = _text(value)
            if text is None:
                return None
            stamp = datetime.fromisoformat(text.strip())
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        return stamp.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def jsonable(value: Any, depth: int = 0) -> Any:
    """Header values as JSON values, every text cleaned (AMQP tables nest; depth is capped)."""
    if depth > 8:
        return clean(repr(value), 200)
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        masked = redact_card_numbers(str(value))
        return value if masked == str(value) else masked
    if isinstance(value, str):
        return clean(value, 4000)
    if isinstance(value, bytes | bytearray):
        return clean(bytes(value).decode("utf-8", "replace"), 4000)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {clean(str(k), 200): jsonable(v, depth + 1) for k, v in list(value.items())[:100]}
    if isinstance(value, list | tuple):
        return [jsonable(v, depth + 1) for v in list(value)[:100]]
    return clean(repr(value), 200)


def _body_object(body: bytes) -> dict[str, Any] | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def _first_death(headers: Mapping[str, Any]) -> Mapping[str, Any] | None:
    deaths = headers.get(h.BROKER_DEATH)
    if isinstance(deaths, list | tuple) and deaths and isinstance(deaths[0], Mapping):
        return deaths[0]
    return None


def fingerprint_of(
    reason: ParkReason, code: str | None, http_status: int | None, exception: str | None
) -> str:
    """What groups failures: reason, gateway error code/HTTP status and exception type."""
    parts = [reason.value, code or "-", str(http_status) if http_status else "-", exception or "-"]
    return "|".join(parts)[:400]


def _digest(*parts: bytes) -> str:
    sha = hashlib.sha256()
    for part in parts:
        sha.update(len(part).to_bytes(8, "big"))
        sha.update(part)
    return sha.hexdigest()


def parse_parked(raw: RawMessage, entry_id: str, now: datetime) -> NewEntry:
    """Describe one parked message; unknown or malformed headers degrade, never raise."""
    headers = raw.headers if isinstance(raw.headers, Mapping) else {}
    body_object = _body_object(raw.body)
    death = _first_death(headers)
    header_reason = _text(headers.get(h.REASON))
    park_id = _short(headers.get(h.PARK_ID), 64)

    error_code = _short(headers.get(h.ERROR_CODE), 100)
    error_message = _short(headers.get(h.ERROR_MESSAGE), 1000)
    http_status = _int(headers.get(h.HTTP_STATUS), 100, 599)
    exception_type = _short(headers.get(h.EXCEPTION_TYPE), 200)
    parked_at = _when(headers.get(h.PARKED_AT))

    if header_reason is not None:
        reason = _REASONS.get(header_reason.strip(), ParkReason.POISON)
        if reason.value != header_reason.strip():
            error_code = error_code or clean(f"unknown_reason:{header_reason}", 100)
    else:
        # Dead-lettered by the broker: the delivery limit (or a reject) -> poison.
        reason = ParkReason.POISON
        broker_reason = _short(death.get("reason"), 60) if death else None
        queue = _short(death.get("queue"), 200) if death else None
        count = _int(death.get("count"), 0, 10**9) if death else None
        error_code = error_code or (broker_reason or "unknown_origin")
        if error_message is None:
            error_message = (
                f"dead-lettered by the broker from {queue or '?'} ({broker_reason})"
                + (f", {count} time(s)" if count else "")
                if death
                else "arrived in the DLQ without payproc or broker headers"
            )
        parked_at = parked_at or (_when(death.get("time")) if death else None)

    if park_id:
        dedup_key = f"park:{park_id}"
    elif death is not None and header_reason is None:
        dedup_key = "broker:" + _digest(
            raw.body,
            str(_text(death.get("queue"))).encode(),
            str(_text(death.get("reason"))).encode(),
            str(death.get("time")).encode(),
            str(death.get("count")).encode(),
        )
    else:
        stable = {k: v for k, v in headers.items() if k not in _IGNORED_FOR_HASH}
        dedup_key = "hash:" + _digest(
            raw.body,
            orjson.dumps(jsonable(stable), option=orjson.OPT_SORT_KEYS),
            str(raw.message_id).encode(),
            str(raw.timestamp).encode(),
        )

    payment_id = _short(headers.get(h.PAYMENT_ID), 64)
    merchant_id = _short(headers.get(h.MERCHANT_ID), 255)
    if body_object is not None:
        payment_id = payment_id or _short(_str_or_none(body_object.get("payment_id")), 64)
        merchant_id = merchant_id or _short(_str_or_none(body_object.get("merchant_id")), 255)

    attempts = _int(headers.get(h.ATTEMPTS), 0, 10**6)
    if attempts is None:
        attempts = _int(headers.get(h.ATTEMPT), 0, 10**6) or 0

    return NewEntry(
        id=entry_id,
        dedup_key=dedup_key,
        reason=reason,
        fingerprint=fingerprint_of(reason, error_code, http_status, exception_type),
        error_code=error_code,
        error_message=error_message,
        http_status=http_status,
        exception_type=exception_type,
        attempts=attempts,
        payment_id=payment_id,
        merchant_id=merchant_id,
        dead_lettered_at=parked_at or _when(raw.timestamp) or now,
        body=clean(raw.body.decode("utf-8", "replace"), MAX_STORED_BODY_CHARS),
        body_bytes=len(raw.body),
        headers_json=orjson.dumps(jsonable(dict(headers))).decode(),
        content_type=_short(raw.content_type, 255),
        message_id=_short(raw.message_id, 255),
        correlation_id=_short(raw.correlation_id, 255),
        reply_to=_short(raw.reply_to, 255),
        origin=_short(headers.get(h.ORIGIN), 255),
        replay_of=_short(headers.get(h.REPLAY_OF), 64),
    )


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
