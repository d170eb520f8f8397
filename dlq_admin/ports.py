"""What the DLQ admin capabilities need from the outside world, as small typed ports.

The store port is split by capability (``EntryWriter`` for ingest, ``EntryReader`` and
``PaymentReader`` for browsing, ``ReplayClaims`` for replay, ``DiscardWriter``, ``AuditStore``);
each capability asks for the combination it uses (``BrowseStore``, ``ReplayStore``,
``DiscardStore``) and ``DlqStore`` is all of them. Reads return the typed rows of
``dlq_admin.rows``. Adapters: ``dlq_admin.store.SqlDlqStore`` (SQLAlchemy), ``dlq_admin.amqp``
(aio-pika). Nothing in here imports a web framework, a database driver or an AMQP client.
A publish the broker did not confirm is ``retry.errors.PublishNotConfirmed``, the error of the
confirmed-publish helper the worker and the admin share.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from dlq_admin.rows import (
    AttemptRecord,
    AuditRow,
    Entry,
    EntryGroup,
    FullEntry,
    PaymentRecord,
    StatusCount,
)
from retry.errors import PublishNotConfirmed
from schemas.dlq import EntryStatus
from schemas.outcome import ParkReason

__all__ = [
    "AuditRecord",
    "AuditStore",
    "BrowseStore",
    "DiscardStore",
    "DiscardWriter",
    "DlqStore",
    "EntryFilters",
    "EntryReader",
    "EntryWriter",
    "NewEntry",
    "Observe",
    "OutgoingRequest",
    "PaymentReader",
    "QueueProbe",
    "RawMessage",
    "ReplayClaims",
    "ReplayStore",
    "RequestPublisher",
]


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One delivery from ``N.dlq``, transport-neutral."""

    body: bytes
    headers: Mapping[str, Any] = field(default_factory=dict)
    content_type: str | None = None
    message_id: str | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    timestamp: datetime | None = None


@dataclass(frozen=True, slots=True)
class NewEntry:
    """A parked message ready to be stored (already redacted and size-limited)."""

    id: str
    dedup_key: str
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
    body: str
    body_bytes: int
    headers_json: str
    content_type: str | None
    message_id: str | None
    correlation_id: str | None
    reply_to: str | None
    origin: str | None
    replay_of: str | None


@dataclass(frozen=True, slots=True)
class EntryFilters:
    reason: ParkReason | None = None
    status: EntryStatus | None = None
    payment_id: str | None = None
    merchant_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    fingerprint: str | None = None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    actor: str | None
    role: str | None
    action: str
    target: str | None
    outcome: str
    status_code: int
    detail: str | None = None
    client: str | None = None


class EntryWriter(Protocol):
    """Ingest: store parked messages."""

    async def insert_entry(self, entry: NewEntry) -> bool:
        """Insert unless ``dedup_key`` exists; True if inserted. Committed on return."""
        ...


class EntryReader(Protocol):
    """Browse and select: read entries, their chains, counts and groups."""

    async def get_entry(self, entry_id: str) -> FullEntry | None: ...

    async def get_entries(self, entry_ids: Sequence[str]) -> dict[str, Entry]:
        """The entries of these ids that exist, by id."""
        ...

    async def list_entries(
        self,
        filters: EntryFilters,
        limit: int,
        before: tuple[datetime, str] | None,
        *,
        oldest_first: bool = False,
    ) -> list[Entry]:
        """Entries matching ``filters``, newest first (or oldest first), after the cursor."""
        ...

    async def chain(self, entry_id: str) -> list[Entry]:
        """Every entry linked to ``entry_id`` through ``replay_of``, oldest first."""
        ...

    async def counts(self) -> list[StatusCount]:
        """One count for every ``(reason, status)`` combination present."""
        ...

    async def oldest_parked(self) -> datetime | None: ...

    async def groups(
        self, status: EntryStatus, reason: ParkReason | None, limit: int
    ) -> list[EntryGroup]: ...


class ReplayClaims(Protocol):
    """Replay: claim entries, then settle them after the broker answered."""

    async def claim_for_replay(self, entry_id: str, stale_before: datetime) -> bool:
        """Atomically ``parked -> replaying`` (or take over a ``replaying`` claim last touched
        before ``stale_before``); True for exactly one concurrent caller."""
        ...

    async def finish_many_replays(
        self, replayed: Sequence[str], failed: Sequence[str], actor: str
    ) -> datetime:
        """One transaction: ``replayed`` (broker confirmed) ``replaying -> replayed`` by
        ``actor``, ``failed`` (not confirmed) ``replaying -> parked``. Returns the time
        written as ``replayed_at``."""
        ...

    async def finish_replay(self, entry_id: str, actor: str, replayed_body: str | None) -> Entry:
        """``replaying -> replayed`` after the broker confirmed the publish."""
        ...

    async def abort_replay(self, entry_id: str) -> None:
        """``replaying -> parked`` after a failed publish."""
        ...


class DiscardWriter(Protocol):
    """Discard: mark entries discarded (rows are never deleted)."""

    async def discard(self, entry_id: str, actor: str) -> bool:
        """Atomically ``parked -> discarded``; True if this call changed it."""
        ...


class PaymentReader(Protocol):
    """The worker's tables, read-only: a payment, its status and its gateway attempts."""

    async def payment(self, payment_id: str) -> PaymentRecord | None: ...

    async def payment_statuses(self, payment_ids: Sequence[str]) -> dict[str, str]:
        """The status of each of these payments that exists, by payment id."""
        ...

    async def attempts(self, payment_id: str) -> list[AttemptRecord]: ...


class AuditStore(Protocol):
    """The audit log: append a row, page through rows newest first."""

    async def add_audit(self, record: AuditRecord) -> None: ...

    async def list_audit(
        self,
        limit: int,
        before_id: int | None,
        actor: str | None,
        action: str | None,
        outcome: str | None,
    ) -> list[AuditRow]: ...


class BrowseStore(EntryReader, PaymentReader, Protocol):
    """Entries and the payments they belong to, read-only (browse; the replay selection)."""


class ReplayStore(EntryReader, PaymentReader, ReplayClaims, Protocol):
    """What replaying needs: read and select entries, check payments, claim and settle."""


class DiscardStore(EntryReader, DiscardWriter, Protocol):
    """What discarding needs: read and select entries, then discard them."""


class DlqStore(
    EntryWriter, EntryReader, ReplayClaims, DiscardWriter, PaymentReader, AuditStore, Protocol
):
    """The whole store port, one adapter for every capability (``SqlDlqStore``)."""


@dataclass(frozen=True, slots=True)
class OutgoingRequest:
    """One replay to publish to ``N``/``payment.request``."""

    body: bytes
    headers: dict[str, Any]
    message_id: str | None


class RequestPublisher(Protocol):
    async def publish_request(
        self, body: bytes, headers: dict[str, Any], message_id: str | None
    ) -> None:
        """Publish to ``N``/``payment.request``, mandatory and confirmed; else
        ``PublishNotConfirmed``."""
        ...

    async def publish_requests(
        self, requests: Sequence[OutgoingRequest]
    ) -> list[PublishNotConfirmed | None]:
        """Publish many requests like ``publish_request``, all in flight at once (publish
        all, then await all confirms). One answer per request, in order: ``None`` once the
        broker confirmed it, else the ``PublishNotConfirmed`` (that request may not be treated as
        sent)."""
        ...

    async def publish_event(self, routing_key: str, body: dict[str, Any]) -> None:
        """Best-effort event on ``N.events``: nobody has to listen."""
        ...

    async def publish_events(
        self, events: Sequence[tuple[str, dict[str, Any]]]
    ) -> list[PublishNotConfirmed]:
        """Many ``(routing_key, body)`` events, pipelined like ``publish_requests``; returns
        the failures (best effort: the caller only reports them)."""
        ...


Observe = Callable[[str, str, float | None], None]
"""Told ``("ingested", reason, lag_seconds)`` and ``("replay", outcome, None)`` (outcome
``replayed`` or ``failed``); the runtime points it at the Prometheus metrics."""


class QueueProbe(Protocol):
    async def waiting(self) -> int | None:
        """Messages ready in ``N.dlq`` (not yet ingested), or None if it cannot be asked."""
        ...
