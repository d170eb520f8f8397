"""The typed rows the DLQ admin store returns: frozen dataclasses, one per kind of read.

The store adapter converts database rows into these at its boundary; the use cases read
attributes, never string keys. Statuses and reasons of DLQ entries are enums here;
a payment's ``status`` stays the worker's string, so a status the admin does not know yet is
shown, not rejected.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from schemas.dlq import EntryStatus
from schemas.outcome import ParkReason


@dataclass(frozen=True, slots=True)
class Entry:
    """A DLQ entry without its body and headers (what lists, chains and bulk calls read)."""

    id: str
    status: EntryStatus
    reason: ParkReason
    fingerprint: str
    error_code: str | None
    error_message: str | None
    http_status: int | None
    exception_type: str | None
    attempts: int
    payment_id: str | None
    merchant_id: str | None
    dead_lettered_at: datetime
    ingested_at: datetime
    body_bytes: int
    content_type: str | None
    message_id: str | None
    correlation_id: str | None
    reply_to: str | None
    origin: str | None
    replay_of: str | None
    replayed_at: datetime | None
    replayed_by: str | None
    discarded_at: datetime | None
    discarded_by: str | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ClaimedEntry:
    """What publishing a replay needs: the stored body and headers (JSON text) and the ids
    that name the message. A bulk claim returns these for the entries it now owns."""

    id: str
    payment_id: str | None
    message_id: str | None
    body: str
    headers: str


@dataclass(frozen=True, slots=True)
class FullEntry(Entry):
    """One entry whole: the summary fields plus the body, headers and edited replay body."""

    body: str
    headers: str
    replayed_body: str | None

    def claimed(self) -> ClaimedEntry:
        """The part of this entry a replay publishes."""
        return ClaimedEntry(self.id, self.payment_id, self.message_id, self.body, self.headers)


@dataclass(frozen=True, slots=True)
class StatusCount:
    """How many entries have this ``reason`` and ``status``."""

    reason: str
    status: str
    count: int


@dataclass(frozen=True, slots=True)
class EntryGroup:
    """Entries of one failure fingerprint, with a sample."""

    fingerprint: str
    reason: ParkReason
    error_code: str | None
    http_status: int | None
    exception_type: str | None
    count: int
    first_seen: datetime
    last_seen: datetime
    sample_id: str
    sample_error: str | None


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    """A payment as the worker stored it (the admin reads, never writes, the payments table)."""

    payment_id: str
    status: str
    attempts: int
    gateway_charge_id: str | None
    last_error_code: str | None
    last_error_message: str | None
    dead_letter_reason: str | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One gateway attempt from the worker's ``payment_attempts`` table."""

    attempt: int
    outcome: str
    http_status: int | None
    error_code: str | None
    error_message: str | None
    replay_of: str | None
    started_at: datetime
    finished_at: datetime
    duration_ms: float


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One stored audit row."""

    id: int
    at: datetime
    actor: str | None
    role: str | None
    action: str
    target: str | None
    outcome: str
    status_code: int
    detail: str | None
    client: str | None
