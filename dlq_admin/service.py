"""The DLQ admin use cases as plain code over ports: ingest, browse, group, replay, discard,
audit and token checks. The FastAPI layer (``dlq_admin.web``) and the tests call these.

Replay is the delicate one. Its order of effects:

1. refuse (409) if the entry is not ``parked`` or its payment is already final in the
   ``payments`` table (a succeeded payment is never charged again: nothing is published);
2. claim the entry atomically (``parked -> replaying``): of concurrent replays of one entry
   exactly one gets past this, so the message is published once;
3. publish the body to ``N``/``payment.request`` (mandatory, confirmed) with
   ``x-payproc-replay-of: <entry id>`` and no attempt header: a fresh attempt budget;
4. only after the broker confirmed: ``replaying -> replayed``. A failed publish puts the
   entry back to ``parked`` and reports the failure; nothing is lost either way. If the
   process dies mid-publish the entry stays ``replaying``; after ``stale_replay_after``
   (5 min) a new replay may take it over (a second publish cannot charge twice: the worker
   de-duplicates on payment_id).

A bulk replay keeps the same order of effects per entry but works in chunks (``bulk_chunk``,
500, fewer when the rate limit is low), ``bulk_concurrency`` (2) chunks in flight: the final
payment check is one query per page of candidates, the claim is one transaction for the chunk,
the chunk's messages are published paced by the token bucket with all their confirms in flight
at once, and one transaction settles the chunk: ``replayed`` exactly for the confirmed
publishes, back to ``parked`` for the refused ones (reported in ``failed``). The
``payment.replayed`` events follow, pipelined as well.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import orjson
from pydantic import ValidationError

from dlq_admin.auth import Authenticator, Principal
from dlq_admin.errors import (
    AdminError,
    Conflict,
    FieldProblem,
    InvalidInput,
    NotFound,
    Unauthenticated,
    Unavailable,
)
from dlq_admin.paging import (
    TokenBucket,
    decode_entry_cursor,
    decode_id_cursor,
    encode_entry_cursor,
    encode_id_cursor,
)
from dlq_admin.parse import clean, parse_parked
from dlq_admin.ports import (
    AuditRecord,
    DlqStore,
    EntryFilters,
    OutgoingRequest,
    PublishError,
    QueueProbe,
    RawMessage,
    RequestPublisher,
    Row,
)
from dlq_admin.replay_truth import BulkReplayCheck, ReplayCheck, refuse_unknown
from processor.decode import Invalid, validate_payload
from schemas import headers as h
from schemas.dlq import (
    AttemptView,
    AuditEntry,
    AuditPage,
    BulkDiscardResult,
    BulkReplayResult,
    BulkSelection,
    DlqEntryDetail,
    DlqEntrySummary,
    DlqGroup,
    DlqGroups,
    DlqPage,
    DlqStats,
    EntryStatus,
    ErrorDetail,
    Failed,
    MessageProperties,
    PaymentView,
    QueueStats,
    ReplayResult,
    Role,
    RoundView,
    Skipped,
)
from schemas.outcome import ParkReason, PaymentStatus
from schemas.payment import PaymentRequest
from schemas.tables import last_error_of, utcnow

log = logging.getLogger("payproc.admin")

T = TypeVar("T")

_FINAL_PAYMENT = {
    PaymentStatus.SUCCEEDED.value: "payment_succeeded",
    PaymentStatus.DECLINED.value: "payment_declined",
}
_BATCH = 200
_UNKNOWN = PaymentStatus.UNKNOWN.value


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is calling and from where, for the audit log."""

    principal: Principal | None
    client: str | None = None

    @property
    def name(self) -> str | None:
        return self.principal.name if self.principal else None

    @property
    def role(self) -> str | None:
        return self.principal.role.value if self.principal else None


@dataclass
class _BulkState:
    replayed: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    failed: list[Failed] = field(default_factory=list)


def _ignore(_kind: str, _label: str, _value: float | None) -> None:
    return None


class DlqAdmin:
    def __init__(
        self,
        store: DlqStore,
        publisher: RequestPublisher,
        probe: QueueProbe,
        authenticator: Authenticator,
        *,
        queue_name: str,
        replay_rate: float = 500.0,
        bulk_chunk: int = 500,
        bulk_concurrency: int = 2,
        stale_replay_after: float = 300.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.probe = probe
        self.authenticator = authenticator
        self.queue_name = queue_name
        self.bucket = TokenBucket(replay_rate)
        self.bulk_chunk = bulk_chunk
        """Most entries one bulk-replay chunk claims, publishes and settles together."""
        self.bulk_concurrency = bulk_concurrency
        """Chunks of one bulk replay in flight at once (one is published while the next is
        claimed and the previous one settled)."""
        self.stale_replay_after = timedelta(seconds=stale_replay_after)
        self._clock = clock
        self.observe: Callable[[str, str, float | None], None] = _ignore
        """Told ``("ingested", reason, lag_seconds)`` and ``("replay", outcome, None)``;
        the runtime points it at the Prometheus metrics."""
        self.replay_check: ReplayCheck = refuse_unknown
        """Outcome truth (``replay_truth``): refuses a replay the gateway may have charged."""
        self.bulk_replay_check: BulkReplayCheck | None = None
        """The same for bulk replays: entries to skip, with why (past the idempotency TTL)."""
        self.unknown_counts: Callable[[], Awaitable[tuple[int, datetime | None]]] | None = None
        """``unknown`` payments and the oldest one's since-when, for ``stats``."""

    def _stale_before(self) -> datetime:
        """A ``replaying`` claim untouched since then was abandoned (its process died)."""
        return self._clock() - self.stale_replay_after

    # ---- authentication and audit ------------------------------------------------------

    async def authenticate(
        self,
        authorization: str | None,
        *,
        action: str,
        target: str | None = None,
        client: str | None = None,
    ) -> Principal:
        """The caller's principal; a refusal is audited and raised as ``Unauthenticated``."""
        try:
            return self.authenticator.authenticate(authorization)
        except Unauthenticated as exc:
            await self.audit(Actor(None, client), action, target, exc)
            raise

    async def authorize(
        self,
        principal: Principal,
        needed: Role,
        *,
        action: str,
        target: str | None = None,
        client: str | None = None,
    ) -> None:
        try:
            self.authenticator.authorize(principal, needed)
        except AdminError as exc:
            await self.audit(Actor(principal, client), action, target, exc)
            raise

    async def audit(
        self,
        actor: Actor,
        action: str,
        target: str | None,
        outcome: AdminError | str,
        detail: Mapping[str, Any] | str | None = None,
    ) -> None:
        """Write one audit row; an audit failure is logged, never hides the call's result."""
        if isinstance(outcome, AdminError):
            outcome_text, status = outcome.code, outcome.http_status
            detail = detail or outcome.message
        else:
            outcome_text, status = outcome, 200
        text = detail if isinstance(detail, str) or detail is None else _json_text(detail)
        record = AuditRecord(
            actor=actor.name,
            role=actor.role,
            action=action,
            target=clean(target, 500) if target else None,
            outcome=outcome_text,
            status_code=status,
            detail=clean(text, 4000) if text else None,
            client=actor.client,
        )
        try:
            await self.store.add_audit(record)
        except Exception:
            log.exception("could not write an audit row", extra={"action": action})

    async def _audited(
        self,
        actor: Actor,
        action: str,
        target: str | None,
        work: Callable[[], Awaitable[T]],
        describe: Callable[[T], tuple[str, Mapping[str, Any] | None]],
    ) -> T:
        try:
            result = await work()
        except AdminError as exc:
            await self.audit(actor, action, target, exc)
            raise
        except Exception as exc:
            await self.audit(actor, action, target, "error", f"{type(exc).__name__}")
            raise
        outcome, detail = describe(result)
        await self.audit(actor, action, target, outcome, detail)
        return result

    async def audit_page(
        self,
        limit: int,
        cursor: str | None,
        actor: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
    ) -> AuditPage:
        before = decode_id_cursor(cursor) if cursor else None
        for name, value in (("actor", actor), ("action", action), ("outcome", outcome)):
            _no_nul(name, value)
        rows = await self.store.list_audit(limit, before, actor, action, outcome)
        items = [AuditEntry.model_validate(dict(row)) for row in rows]
        next_cursor = encode_id_cursor(items[-1].id) if len(items) == limit and items else None
        return AuditPage(items=items, next_cursor=next_cursor)

    # ---- ingest ------------------------------------------------------------------------

    async def ingest(self, raw: RawMessage) -> bool:
        """Store one parked message unless it was stored before; True if it is new."""
        entry = parse_parked(raw, str(uuid.uuid4()), self._clock())
        inserted = await self.store.insert_entry(entry)
        if inserted:
            lag = (self._clock() - entry.dead_lettered_at).total_seconds()
            self.observe("ingested", entry.reason.value, max(lag, 0.0))
            log.debug(
                "dlq entry indexed",
                extra={"entry_id": entry.id, "reason": entry.reason.value},
            )
        return inserted

    # ---- browse ------------------------------------------------------------------------

    async def list_entries(
        self, filters: EntryFilters, limit: int, cursor: str | None = None
    ) -> DlqPage:
        filters = _checked_filters(filters)
        before = None
        if cursor:
            decoded = decode_entry_cursor(cursor)
            before = (decoded.at, decoded.id)
        rows = await self.store.list_entries(filters, limit, before)
        items = [summary(row) for row in rows]
        next_cursor = None
        if len(items) == limit and items:
            next_cursor = encode_entry_cursor(items[-1].dead_lettered_at, items[-1].id)
        return DlqPage(items=items, next_cursor=next_cursor)

    async def get_entry(self, entry_id: str) -> DlqEntryDetail:
        row = await self._entry(entry_id)
        chain = await self.store.chain(entry_id)
        payment_id = row["payment_id"]
        history = await self.store.attempts(payment_id) if payment_id else []
        payment = await self.store.payment(payment_id) if payment_id else None
        body, is_json = _body_value(row["body"])
        replayed_body = _body_value(row["replayed_body"])[0] if row["replayed_body"] else None
        try:
            headers = orjson.loads(row["headers"])
        except orjson.JSONDecodeError:
            headers = {}
        return DlqEntryDetail(
            **summary(row).model_dump(),
            body=body,
            body_is_json=is_json,
            body_bytes=row["body_bytes"],
            headers=headers if isinstance(headers, dict) else {},
            properties=MessageProperties(
                content_type=row["content_type"],
                message_id=row["message_id"],
                correlation_id=row["correlation_id"],
                reply_to=row["reply_to"],
            ),
            origin=row["origin"],
            replayed_body=replayed_body,
            replayed_as=[r["id"] for r in chain if r["replay_of"] == entry_id],
            rounds=[_round(r) for r in chain],
            history=[AttemptView.model_validate(dict(a)) for a in history],
            payment=payment_view(payment) if payment is not None else None,
        )

    async def stats(self) -> DlqStats:
        counts = await self.store.counts()
        oldest = await self.store.oldest_parked()
        by_reason: dict[str, int] = {}
        by_status: dict[str, int] = {s.value: 0 for s in EntryStatus}
        parked_by_reason: dict[str, int] = {}
        for reason, status, count in counts:
            by_reason[reason] = by_reason.get(reason, 0) + count
            by_status[status] = by_status.get(status, 0) + count
            if status == EntryStatus.PARKED.value:
                parked_by_reason[reason] = parked_by_reason.get(reason, 0) + count
        try:
            waiting = await self.probe.waiting()
        except Exception:
            waiting = None
        age = (self._clock() - oldest).total_seconds() if oldest else None
        unknown, unknown_since = (0, None)
        if self.unknown_counts is not None:
            unknown, unknown_since = await self.unknown_counts()
        return DlqStats(
            unknown_payments=unknown,
            oldest_unknown_age_seconds=(
                max((self._clock() - unknown_since).total_seconds(), 0.0)
                if unknown_since is not None
                else None
            ),
            total=sum(by_status.values()),
            parked=by_status[EntryStatus.PARKED.value],
            by_reason=by_reason,
            by_status=by_status,
            parked_by_reason=parked_by_reason,
            oldest_parked_at=oldest,
            oldest_parked_age_seconds=max(age, 0.0) if age is not None else None,
            queue=QueueStats(name=self.queue_name, waiting=waiting),
        )

    async def groups(
        self,
        status: EntryStatus = EntryStatus.PARKED,
        reason: ParkReason | None = None,
        limit: int = 100,
    ) -> DlqGroups:
        rows = await self.store.groups(status, reason, limit)
        return DlqGroups(
            status=status,
            items=[
                DlqGroup(
                    fingerprint=row["fingerprint"],
                    reason=ParkReason(row["reason"]),
                    error_code=row["error_code"],
                    http_status=row["http_status"],
                    exception_type=row["exception_type"],
                    count=row["count"],
                    first_seen=row["first_seen"],
                    last_seen=row["last_seen"],
                    sample_id=row["sample_id"],
                    sample_error=row["sample_error"],
                )
                for row in rows
            ],
        )

    async def payment(self, payment_id: str) -> PaymentView:
        if "\x00" in payment_id:
            raise NotFound(f"no payment {clean(payment_id, 80)!r}")
        row = await self.store.payment(payment_id)
        if row is None:
            raise NotFound(f"no payment {clean(payment_id, 80)!r}")
        return payment_view(row)

    async def _entry(self, entry_id: str) -> Row:
        row = await self.store.get_entry(entry_id) if "\x00" not in entry_id else None
        if row is None:
            raise NotFound(f"no DLQ entry {clean(entry_id, 80)!r}")
        return row

    # ---- replay ------------------------------------------------------------------------

    async def replay(
        self, actor: Actor, entry_id: str, payload: dict[str, Any] | None = None
    ) -> ReplayResult:
        """Replay one entry (optionally with an edited, re-validated body)."""
        assert actor.principal is not None

        async def work() -> ReplayResult:
            return await self._replay(actor, entry_id, payload)

        def describe(result: ReplayResult) -> tuple[str, Mapping[str, Any] | None]:
            return "ok", {"payment_id": result.payment_id, "edited": result.edited}

        return await self._audited(actor, "dlq.replay", entry_id, work, describe)

    async def _replay(
        self, actor: Actor, entry_id: str, payload: dict[str, Any] | None
    ) -> ReplayResult:
        row = await self._entry(entry_id)
        _replayable(row, self._stale_before())
        edited: PaymentRequest | None = None
        if payload is not None:
            edited = validate_edit(payload, row["payment_id"])
        payment_id = edited.key if edited is not None else row["payment_id"]
        if payment_id:
            payment = await self.store.payment(payment_id)
            if payment is not None and payment["status"] in _FINAL_PAYMENT:
                raise Conflict(
                    f"payment {payment_id} already {payment['status']}: a final payment is "
                    "never replayed (nothing was published)",
                    _FINAL_PAYMENT[payment["status"]],
                )
            await self.replay_check(payment_id, payment["status"] if payment else None)
        if not await self.store.claim_for_replay(entry_id, self._stale_before()):
            current = await self._entry(entry_id)
            _replayable(current, None)
            raise Conflict("entry is being replayed by another call", "replay_in_progress")
        done = await self._publish_claimed(actor, row, edited)
        return ReplayResult(
            id=entry_id,
            status=EntryStatus(done["status"]),
            payment_id=payment_id,
            edited=edited is not None,
            replayed_at=done["replayed_at"],
            replayed_by=done["replayed_by"],
        )

    async def _publish_claimed(self, actor: Actor, row: Row, edited: PaymentRequest | None) -> Row:
        """Publish a claimed entry; ``replayed`` after the confirm, back to ``parked`` if not."""
        entry_id = row["id"]
        full = row if "body" in row else await self._entry(entry_id)
        body_text: str | None = None
        if edited is not None:
            body_text = orjson.dumps(edited.to_message()).decode()
            body = body_text.encode()
            message_id: str | None = edited.key
            headers = _replay_headers(full)
        else:
            message = _replay_message(full)
            body, headers, message_id = message.body, message.headers, message.message_id
        try:
            await self.publisher.publish_request(body, headers, message_id)
        except PublishError as exc:
            self.observe("replay", "failed", None)
            try:
                await self.store.abort_replay(entry_id)
            except Exception:
                log.exception("could not return entry %s to parked", entry_id)
            raise Unavailable(f"the broker did not confirm the replay: {exc}") from exc
        except BaseException:
            # Cancelled or crashed mid-publish: we cannot know if it went out; leave the
            # entry claimed ("replaying") rather than risk a second publish.
            log.error(
                "replay of %s interrupted; entry left in 'replaying' (a replay may take it "
                "over after %s)",
                entry_id,
                self.stale_replay_after,
            )
            raise
        done = await self.store.finish_replay(entry_id, actor.name or "?", body_text)
        self.observe("replay", "replayed", None)
        log.info(
            "dlq entry replayed",
            extra={"entry_id": entry_id, "actor": actor.name, "edited": edited is not None},
        )
        try:
            await self.publisher.publish_event(
                "payment.replayed",
                {
                    "payment_id": message_id,
                    "status": "replayed",
                    "dlq_entry_id": entry_id,
                    "replayed_by": actor.name,
                    "edited": edited is not None,
                    "processed_at": (done["replayed_at"] or self._clock()).isoformat(),
                },
            )
        except Exception as exc:  # events are optional to consume and to deliver
            log.warning("payment.replayed event not published: %s", exc)
        return done

    # ---- bulk --------------------------------------------------------------------------

    async def _candidates(
        self, selection: BulkSelection, page: int = _BATCH
    ) -> AsyncIterator[tuple[str, Row | None]]:
        """``(id, row)`` pairs to consider, oldest first; ``row`` None for unknown ids."""
        if selection.ids is not None:
            ids = [i for i in dict.fromkeys(selection.ids)]
            for start in range(0, len(ids), page):
                chunk = ids[start : start + page]
                found = await self.store.get_entries([i for i in chunk if "\x00" not in i])
                for entry_id in chunk:
                    yield entry_id, found.get(entry_id)
            return
        filters = EntryFilters(
            status=EntryStatus.PARKED, reason=selection.reason, fingerprint=selection.group
        )
        after: tuple[datetime, str] | None = None
        while True:
            rows = await self.store.list_entries(filters, page, after, oldest_first=True)
            for row in rows:
                yield row["id"], row
            if len(rows) < page:
                return
            after = (rows[-1]["dead_lettered_at"], rows[-1]["id"])

    async def _selected(
        self, selection: BulkSelection, state: _BulkState, page: int = _BATCH
    ) -> AsyncIterator[list[Row]]:
        """Batches of parked rows whose payment is not final; the rest goes to ``skipped``.
        One ``payment_statuses`` query per batch of ``page`` candidates."""
        batch: list[tuple[str, Row | None]] = []

        async def flush() -> list[Row]:
            rows = [row for _, row in batch if row is not None]
            payment_ids = [r["payment_id"] for r in rows if r["payment_id"]]
            statuses = await self.store.payment_statuses(payment_ids) if payment_ids else {}
            ready: list[Row] = []
            for entry_id, row in batch:
                if row is None:
                    state.skipped.append(Skipped(id=entry_id, why="not_found"))
                elif row["status"] != EntryStatus.PARKED.value:
                    state.skipped.append(Skipped(id=entry_id, why=f"status_{row['status']}"))
                elif row["payment_id"] and statuses.get(row["payment_id"]) in _FINAL_PAYMENT:
                    why = _FINAL_PAYMENT[statuses[row["payment_id"]]]
                    state.skipped.append(Skipped(id=entry_id, why=why))
                elif row["payment_id"] and statuses.get(row["payment_id"]) == _UNKNOWN:
                    state.skipped.append(Skipped(id=entry_id, why="payment_unknown"))
                else:
                    ready.append(row)
            batch.clear()
            if ready and self.bulk_replay_check is not None:
                pairs = [(r["id"], r["payment_id"]) for r in ready if r["payment_id"]]
                skips = await self.bulk_replay_check(pairs, selection.dry_run)
                state.skipped.extend(Skipped(id=i, why=w) for i, w in skips.items())
                ready = [r for r in ready if r["id"] not in skips]
            return ready

        async for pair in self._candidates(selection, page):
            batch.append(pair)
            if len(batch) >= page:
                yield await flush()
        if batch:
            yield await flush()

    async def bulk_replay(self, actor: Actor, selection: BulkSelection) -> BulkReplayResult:
        """Replay many entries (rate-limited); report replayed, skipped (why) and failed."""
        assert actor.principal is not None

        async def work() -> BulkReplayResult:
            return await self._bulk_replay(actor, selection)

        def describe(result: BulkReplayResult) -> tuple[str, Mapping[str, Any] | None]:
            return ("dry_run" if result.dry_run else "ok"), {
                "replayed": result.replayed,
                "would_replay": result.would_replay,
                "skipped": len(result.skipped),
                "failed": len(result.failed),
                "ids": result.ids[:100],
            }

        return await self._audited(
            actor, "dlq.bulk_replay", _selection_target(selection), work, describe
        )

    def _chunk_size(self) -> int:
        """Entries per bulk-replay chunk: ``bulk_chunk``, but no more than about half a second
        of the rate limit, so entries do not sit claimed (``replaying``) long before their
        publish when the rate is low."""
        return max(1, min(self.bulk_chunk, max(50, int(self.bucket.rate / 2))))

    async def _bulk_replay(self, actor: Actor, selection: BulkSelection) -> BulkReplayResult:
        state = _BulkState()
        chosen: list[str] = []
        chunk = self._chunk_size()
        running: set[asyncio.Task[None]] = set()
        try:
            async for rows in self._selected(selection, state, chunk):
                room = selection.limit - len(chosen)
                if room <= 0:
                    break
                take = rows[:room]
                chosen.extend(r["id"] for r in take)
                if not selection.dry_run and take:
                    while len(running) >= self.bulk_concurrency:
                        done, running = await asyncio.wait(
                            running, return_when=asyncio.FIRST_COMPLETED
                        )
                        for task in done:
                            task.result()  # the first failure stops the bulk replay
                    running.add(asyncio.create_task(self._replay_chunk(actor, take, state)))
                if len(chosen) >= selection.limit:
                    break
            if running:
                await asyncio.wait(running)
                for task in running:
                    task.result()
        except asyncio.CancelledError:
            for task in running:
                task.cancel()
            raise
        except BaseException:
            # Let the chunks already publishing settle their entries before failing.
            if running:
                await asyncio.wait(running)
            raise
        if selection.dry_run:
            return BulkReplayResult(
                dry_run=True,
                replayed=0,
                would_replay=len(chosen),
                ids=chosen,
                skipped=state.skipped,
                failed=[],
            )
        order = {entry_id: i for i, entry_id in enumerate(chosen)}
        return BulkReplayResult(
            dry_run=False,
            replayed=len(state.replayed),
            would_replay=len(chosen),
            ids=sorted(state.replayed, key=order.__getitem__),
            skipped=state.skipped,
            failed=state.failed,
        )

    async def _replay_chunk(self, actor: Actor, rows: list[Row], state: _BulkState) -> None:
        """Claim ``rows`` in one transaction, publish them with their confirms pipelined (paced
        by the token bucket), then settle them in one transaction: ``replayed`` exactly for the
        confirmed publishes, back to ``parked`` for the failed ones."""
        claimed = await self.store.claim_many_for_replay(
            [r["id"] for r in rows], self._stale_before()
        )
        ids: list[str] = []
        for row in rows:
            if row["id"] in claimed:
                ids.append(row["id"])
            else:
                state.skipped.append(Skipped(id=row["id"], why="claimed_elsewhere"))
        if not ids:
            return
        messages = [_replay_message(claimed[entry_id]) for entry_id in ids]
        batches: list[tuple[int, asyncio.Task[list[PublishError | None]]]] = []
        sent = 0
        try:
            while sent < len(messages):
                granted = await self.bucket.take(len(messages) - sent)
                batch = messages[sent : sent + granted]
                task = asyncio.create_task(self.publisher.publish_requests(batch))
                batches.append((sent, task))
                sent += len(batch)
            answers = await asyncio.gather(*(t for _, t in batches), return_exceptions=True)
        except BaseException:
            # Cancelled mid-chunk: which publishes went out is unknown; leave the chunk
            # claimed ("replaying") rather than risk a second publish.
            for _, task in batches:
                task.cancel()
            log.error(
                "bulk replay interrupted; %d entries left in 'replaying' (a replay may take "
                "them over after %s)",
                len(ids),
                self.stale_replay_after,
            )
            raise
        replayed: list[str] = []
        failed: list[str] = []
        unknown: BaseException | None = None
        for (first, _), answer in zip(batches, answers, strict=True):
            if isinstance(answer, BaseException):
                # A bug, not a broker answer: these entries stay claimed, the call fails.
                unknown = unknown or answer
                continue
            for entry_id, error in zip(ids[first : first + len(answer)], answer, strict=True):
                if error is None:
                    replayed.append(entry_id)
                else:
                    failed.append(entry_id)
                    state.failed.append(
                        Failed(
                            id=entry_id,
                            error=f"the broker did not confirm the replay: {error}"[:300],
                        )
                    )
        when = await self.store.finish_many_replays(replayed, failed, actor.name or "?")
        state.replayed.extend(replayed)
        for _ in replayed:
            self.observe("replay", "replayed", None)
        for _ in failed:
            self.observe("replay", "failed", None)
        log.info(
            "dlq entries replayed",
            extra={"actor": actor.name, "replayed": len(replayed), "failed": len(failed)},
        )
        await self._announce_replays(actor, [claimed[entry_id] for entry_id in replayed], when)
        if unknown is not None:
            raise unknown

    async def _announce_replays(self, actor: Actor, rows: list[Row], when: datetime) -> None:
        """``payment.replayed`` for each replayed entry, pipelined; events are optional to
        consume and to deliver, so a failure is only logged."""
        at = when.isoformat()
        errors = await self.publisher.publish_events(
            [
                (
                    "payment.replayed",
                    {
                        "payment_id": row["payment_id"] or row["message_id"],
                        "status": "replayed",
                        "dlq_entry_id": row["id"],
                        "replayed_by": actor.name,
                        "edited": False,
                        "processed_at": at,
                    },
                )
                for row in rows
            ]
        )
        if errors:
            log.warning("%d payment.replayed events not published: %s", len(errors), errors[0])

    # ---- discard -----------------------------------------------------------------------

    async def discard(
        self, actor: Actor, entry_id: str, note: str | None = None
    ) -> DlqEntrySummary:
        """Mark one entry ``discarded`` (the row stays; nothing is deleted)."""
        assert actor.principal is not None

        async def work() -> tuple[DlqEntrySummary, bool]:
            row = await self._entry(entry_id)
            status = row["status"]
            if status == EntryStatus.DISCARDED.value:
                return summary(row), False
            if status != EntryStatus.PARKED.value:
                raise Conflict(
                    f"entry is {status}; only parked entries can be discarded", f"entry_{status}"
                )
            if not await self.store.discard(entry_id, actor.name or "?"):
                current = await self._entry(entry_id)
                if current["status"] == EntryStatus.DISCARDED.value:
                    return summary(current), False
                raise Conflict(f"entry is {current['status']}", f"entry_{current['status']}")
            return summary(await self._entry(entry_id)), True

        def describe(result: tuple[DlqEntrySummary, bool]) -> tuple[str, Mapping[str, Any]]:
            return ("ok" if result[1] else "noop"), {"note": note} if note else {}

        result, _changed = await self._audited(actor, "dlq.discard", entry_id, work, describe)
        return result

    async def bulk_discard(self, actor: Actor, selection: BulkSelection) -> BulkDiscardResult:
        assert actor.principal is not None

        async def work() -> BulkDiscardResult:
            state = _BulkState()
            chosen: list[str] = []
            done: list[str] = []
            async for rows in self._selected_any(selection, state):
                for row in rows[: selection.limit - len(chosen)]:
                    chosen.append(row["id"])
                    if selection.dry_run:
                        continue
                    if await self.store.discard(row["id"], actor.name or "?"):
                        done.append(row["id"])
                    else:
                        state.skipped.append(Skipped(id=row["id"], why="changed_concurrently"))
                if len(chosen) >= selection.limit:
                    break
            return BulkDiscardResult(
                dry_run=selection.dry_run,
                discarded=len(done),
                ids=chosen if selection.dry_run else done,
                skipped=state.skipped,
            )

        def describe(result: BulkDiscardResult) -> tuple[str, Mapping[str, Any]]:
            return ("dry_run" if result.dry_run else "ok"), {
                "discarded": result.discarded,
                "skipped": len(result.skipped),
                "ids": result.ids[:100],
            }

        return await self._audited(
            actor, "dlq.bulk_discard", _selection_target(selection), work, describe
        )

    async def _selected_any(
        self, selection: BulkSelection, state: _BulkState
    ) -> AsyncIterator[list[Row]]:
        """Like ``_selected`` but a final payment does not protect an entry from discard."""
        batch: list[Row] = []
        async for entry_id, row in self._candidates(selection):
            if row is None:
                state.skipped.append(Skipped(id=entry_id, why="not_found"))
            elif row["status"] != EntryStatus.PARKED.value:
                state.skipped.append(Skipped(id=entry_id, why=f"status_{row['status']}"))
            else:
                batch.append(row)
            if len(batch) >= _BATCH:
                yield batch
                batch = []
        if batch:
            yield batch


# ---- conversions and checks -------------------------------------------------------------


def summary(row: Row) -> DlqEntrySummary:
    return DlqEntrySummary(
        id=row["id"],
        payment_id=row["payment_id"],
        merchant_id=row["merchant_id"],
        reason=ParkReason(row["reason"]),
        status=EntryStatus(row["status"]),
        error=_error(row),
        attempts=row["attempts"],
        fingerprint=row["fingerprint"],
        dead_lettered_at=row["dead_lettered_at"],
        ingested_at=row["ingested_at"],
        replay_of=row["replay_of"],
        replayed_at=row["replayed_at"],
        replayed_by=row["replayed_by"],
        discarded_at=row["discarded_at"],
        discarded_by=row["discarded_by"],
    )


def _error(row: Row) -> ErrorDetail:
    return ErrorDetail(
        code=row["error_code"],
        message=row["error_message"],
        http_status=row["http_status"],
        exception_type=row["exception_type"],
    )


def _round(row: Row) -> RoundView:
    return RoundView(
        id=row["id"],
        status=EntryStatus(row["status"]),
        reason=ParkReason(row["reason"]),
        error=_error(row),
        attempts=row["attempts"],
        dead_lettered_at=row["dead_lettered_at"],
        replayed_at=row["replayed_at"],
        replayed_by=row["replayed_by"],
    )


def payment_view(row: Row) -> PaymentView:
    return PaymentView(
        payment_id=row["payment_id"],
        status=PaymentStatus(row["status"]),
        attempts=row["attempts"],
        gateway_charge_id=row["gateway_charge_id"],
        last_error=last_error_of(row),
        dead_letter_reason=row["dead_letter_reason"],
        updated_at=row["updated_at"],
    )


def _body_value(text: str) -> tuple[Any, bool]:
    try:
        return orjson.loads(text), True
    except orjson.JSONDecodeError:
        return text, False


def _traceparent(row: Row) -> str | None:
    raw = row.get("headers")
    if not raw:
        return None
    try:
        headers = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    value = headers.get(h.TRACEPARENT) if isinstance(headers, dict) else None
    return value if isinstance(value, str) and len(value) <= 200 else None


def _replay_headers(row: Row) -> dict[str, Any]:
    """``x-payproc-replay-of`` (and the original ``traceparent``), never an attempt header."""
    headers: dict[str, Any] = {h.REPLAY_OF: row["id"]}
    traceparent = _traceparent(row)
    if traceparent:
        headers[h.TRACEPARENT] = traceparent
    return headers


def _replay_message(row: Row) -> OutgoingRequest:
    """The unedited replay of an entry (a row with ``body`` and ``headers``)."""
    message_id: str | None = row["payment_id"] or row["message_id"]
    return OutgoingRequest(str(row["body"]).encode(), _replay_headers(row), message_id)


def _replayable(row: Row, stale_before: datetime | None) -> None:
    """Raise ``Conflict`` unless the entry is parked (or its ``replaying`` claim is stale)."""
    status = row["status"]
    if status == EntryStatus.PARKED.value:
        return
    if (
        status == EntryStatus.REPLAYING.value
        and stale_before is not None
        and row["updated_at"] < stale_before
    ):
        return
    if status == EntryStatus.REPLAYED.value:
        raise Conflict(
            f"entry was already replayed at {row['replayed_at']} by {row['replayed_by']}",
            "already_replayed",
        )
    if status == EntryStatus.REPLAYING.value:
        raise Conflict("entry is being replayed by another call", "replay_in_progress")
    raise Conflict(f"entry is {status}; only parked entries can be replayed", f"entry_{status}")


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


def _no_nul(name: str, value: str | None) -> None:
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


def _checked_filters(filters: EntryFilters) -> EntryFilters:
    _no_nul("payment_id", filters.payment_id)
    _no_nul("merchant_id", filters.merchant_id)
    _no_nul("group", filters.fingerprint)
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


def _selection_target(selection: BulkSelection) -> str:
    if selection.ids is not None:
        shown = ",".join(selection.ids[:20])
        more = f" (+{len(selection.ids) - 20})" if len(selection.ids) > 20 else ""
        return f"ids:{shown}{more}"
    if selection.reason is not None:
        return f"reason:{selection.reason.value}"
    return f"group:{selection.group}"


def _json_text(value: Mapping[str, Any]) -> str:
    return orjson.dumps(value, default=str).decode()
