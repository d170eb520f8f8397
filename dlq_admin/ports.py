"""What the DLQ admin service needs from the outside world, as small typed ports.

Adapters: ``dlq_admin.store.SqlDlqStore`` (SQLAlchemy), ``dlq_admin.amqp`` (aio-pika).
Nothing in here imports a web framework, a database driver or an AMQP client.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from retry.errors import PublishNotConfirmed
from schemas.dlq import EntryStatus
from schemas.outcome import ParkReason

PublishError = PublishNotConfirmed
"""Alias of ``retry.errors.PublishNotConfirmed`` for modules not yet moved to that name
(``PublishError`` is also the name of an aio-pika exception)."""


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


Row = Mapping[Any, Any]
"""A database row as a mapping of column name to value."""


class DlqStore(Protocol):
    async def insert_entry(self, entry: NewEntry) -> bool:
        """Insert unless ``dedup_key`` exists; True if inserted. Committed on return."""
        ...

    async def get_entry(self, entry_id: str) -> Row | None: ...

    async def get_entries(self, entry_ids: Sequence[str]) -> dict[str, Row]: ...

    async def list_entries(
        self,
        filters: EntryFilters,
        limit: int,
        before: tuple[datetime, str] | None,
        *,
        oldest_first: bool = False,
    ) -> list[Row]:
        """Entries matching ``filters``, newest first (or oldest first), after the cursor."""
        ...

    async def chain(self, entry_id: str) -> list[Row]:
        """Every entry linked to ``entry_id`` through ``replay_of``, oldest first."""
        ...

    async def counts(self) -> list[tuple[str, str, int]]:
        """``(reason, status, count)`` for every combination present."""
        ...

    async def oldest_parked(self) -> datetime | None: ...

    async def groups(
        self, status: EntryStatus, reason: ParkReason | None, limit: int
    ) -> list[Row]: ...

    async def claim_for_replay(self, entry_id: str, stale_before: datetime) -> bool:
        """Atomically ``parked -> replaying`` (or take over a ``replaying`` claim last touched
        before ``stale_before``); True for exactly one concurrent caller."""
        ...

    async def claim_many_for_replay(
        self, entry_ids: Sequence[str], stale_before: datetime
    ) -> dict[str, Row]:
        """``claim_for_replay`` for many entries in one transaction. Returns the entries this
        call claimed (``id``, ``payment_id``, ``message_id``, ``body``, ``headers``) by id;
        an id missing from the answer was not claimable (claimed elsewhere or changed)."""
        ...

    async def finish_many_replays(
        self, replayed: Sequence[str], failed: Sequence[str], actor: str
    ) -> datetime:
        """One transaction: ``replayed`` (broker confirmed) ``replaying -> replayed`` by
        ``actor``, ``failed`` (not confirmed) ``replaying -> parked``. Returns the time
        written as ``replayed_at``."""
        ...

    async def finish_replay(self, entry_id: str, actor: str, replayed_body: str | None) -> Row:
        """``replaying -> replayed`` after the broker confirmed the publish."""
        ...

    async def abort_replay(self, entry_id: str) -> None:
        """``replaying -> parked`` after a failed publish."""
        ...

    async def discard(self, entry_id: str, actor: str) -> bool:
        """Atomically ``parked -> discarded``; True if this call changed it."""
        ...

    async def payment(self, payment_id: str) -> Row | None: ...

    async def payment_statuses(self, payment_ids: Sequence[str]) -> dict[str, str]: ...

    async def attempts(self, payment_id: str) -> list[Row]: ...

    async def add_audit(self, record: AuditRecord) -> None: ...

    async def list_audit(
        self,
        limit: int,
        before_id: int | None,
        actor: str | None,
        action: str | None,
        outcome: str | None,
    ) -> list[Row]: ...


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


class QueueProbe(Protocol):
    async def waiting(self) -> int | None:
        """Messages ready in ``N.dlq`` (not yet ingested), or None if it cannot be asked."""
        ...
