"""What may be replayed and what a replay publishes: the rules single and bulk replay share.

* An entry is replayable when it is ``parked``, or ``replaying`` with a claim untouched since
  ``stale_before`` (its process died mid-publish).
* A payment that is already final in the ``payments`` table is never replayed: the
  ``Conflict`` code (single) or the ``skipped`` reason (bulk) names its status.
* A replay publishes the stored body unchanged (or the edited body), with
  ``x-payproc-replay-of: <entry id>`` and the original ``traceparent``, and never an attempt
  header: the worker gives it a fresh attempt budget.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from dlq_admin.errors import Conflict
from dlq_admin.ports import OutgoingRequest
from dlq_admin.rows import ClaimedEntry, Entry
from schemas import headers as h
from schemas.dlq import EntryStatus
from schemas.outcome import PaymentStatus
from schemas.payment import PaymentRequest

FINAL_PAYMENT = {
    PaymentStatus.SUCCEEDED.value: "payment_succeeded",
    PaymentStatus.DECLINED.value: "payment_declined",
}
"""Payment status -> the code that refuses (or skips) a replay of it."""


def payment_refusal(status: str | None) -> str | None:
    """The refusal code when a payment in ``status`` must not be replayed, else None."""
    return FINAL_PAYMENT.get(status) if status is not None else None


def check_replayable(entry: Entry, stale_before: datetime | None) -> None:
    """Raise ``Conflict`` unless the entry is parked (or its ``replaying`` claim is stale)."""
    status = entry.status
    if status is EntryStatus.PARKED:
        return
    if (
        status is EntryStatus.REPLAYING
        and stale_before is not None
        and entry.updated_at < stale_before
    ):
        return
    if status is EntryStatus.REPLAYED:
        raise Conflict(
            f"entry was already replayed at {entry.replayed_at} by {entry.replayed_by}",
            "already_replayed",
        )
    if status is EntryStatus.REPLAYING:
        raise Conflict("entry is being replayed by another call", "replay_in_progress")
    raise Conflict(
        f"entry is {status.value}; only parked entries can be replayed", f"entry_{status.value}"
    )


def _traceparent(headers_json: str) -> str | None:
    if not headers_json:
        return None
    try:
        headers = orjson.loads(headers_json)
    except orjson.JSONDecodeError:
        return None
    value = headers.get(h.TRACEPARENT) if isinstance(headers, dict) else None
    return value if isinstance(value, str) and len(value) <= 200 else None


def replay_headers(entry: ClaimedEntry) -> dict[str, Any]:
    """``x-payproc-replay-of`` (and the original ``traceparent``), never an attempt header."""
    headers: dict[str, Any] = {h.REPLAY_OF: entry.id}
    traceparent = _traceparent(entry.headers)
    if traceparent:
        headers[h.TRACEPARENT] = traceparent
    return headers


def replay_message(entry: ClaimedEntry, edited: PaymentRequest | None = None) -> OutgoingRequest:
    """The message that replays ``entry``: its stored body unchanged, or the ``edited``
    request (validated by ``validate_edit``) with its own payment id as message id."""
    if edited is not None:
        body = orjson.dumps(edited.to_message())
        return OutgoingRequest(body, replay_headers(entry), edited.key)
    message_id = entry.payment_id or entry.message_id
    return OutgoingRequest(entry.body.encode(), replay_headers(entry), message_id)
