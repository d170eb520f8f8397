"""Replay: republish a parked entry with a fresh attempt budget.

The order of effects of a replay:

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

This module is the seam every way of replaying goes through. ``Replay.replay`` is the
single replay of the API (steps 1-4 for one entry, optionally with an edited body).
``Replay.publish_batch`` does steps 3-4 for entries a caller already checked and claimed (a
replay job's round, ``dlq_admin.jobs.execution``, which claims its batch with
``JobStore.claim_entries``): published paced by the token bucket with their confirms in
flight at once, then settled in one transaction; the batch's ``payment.replayed`` events go
out while the caller goes on (``announced`` waits for them, the next batch does first). The
rules both share (what is replayable, what is published) are in ``dlq_admin.replay_rules``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from dlq_admin.audit import Actor, AuditLog, Detail, audited, entry_target
from dlq_admin.browse import find_entry
from dlq_admin.errors import Conflict, Unavailable
from dlq_admin.paging import TokenBucket
from dlq_admin.ports import Observe, ReplayStore, RequestPublisher
from dlq_admin.replay_rules import check_replayable, payment_refusal, replay_message
from dlq_admin.replay_truth import ReplayCheck, refuse_unknown
from dlq_admin.rows import ClaimedEntry, Entry
from dlq_admin.validation import validate_edit
from retry.errors import PublishNotConfirmed
from schemas.dlq import Failed, ReplayResult
from schemas.payment import PaymentRequest

log = logging.getLogger("payproc.admin")


@dataclass(frozen=True, slots=True)
class Published:
    """What ``Replay.publish_batch`` settled: the ids now ``replayed`` (in the order given)
    and the entries the broker did not confirm (back to ``parked``)."""

    replayed: list[str]
    failed: list[Failed]


def _describe(result: ReplayResult) -> tuple[str, Detail]:
    return "ok", {"payment_id": result.payment_id, "edited": result.edited}


class Replay:
    def __init__(
        self,
        store: ReplayStore,
        publisher: RequestPublisher,
        audit_log: AuditLog,
        *,
        bucket: TokenBucket,
        stale_replay_after: timedelta,
        clock: Callable[[], datetime],
        observe: Observe,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.audit_log = audit_log
        self.bucket = bucket
        """Paces ``publish_batch`` (the replay rate limit)."""
        self.stale_replay_after = stale_replay_after
        self._clock = clock
        self._observe = observe
        self.truth_check: ReplayCheck = refuse_unknown
        """Outcome truth (``replay_truth``): refuses a replay the gateway may have charged
        (an ``unknown`` payment; past the idempotency window, a lookup first)."""
        self._announcing: asyncio.Task[None] | None = None
        """The ``payment.replayed`` events of the latest batch, while they are published."""

    def stale_before(self) -> datetime:
        """A ``replaying`` claim untouched since then was abandoned (its process died)."""
        return self._clock() - self.stale_replay_after

    # ---- one entry ---------------------------------------------------------------------

    @audited("dlq.replay", entry_target, _describe)
    async def replay(
        self, actor: Actor, entry_id: str, payload: dict[str, Any] | None = None
    ) -> ReplayResult:
        """Replay one entry (optionally with an edited, re-validated body)."""
        entry = await find_entry(self.store, entry_id)
        check_replayable(entry, self.stale_before())
        edited: PaymentRequest | None = None
        if payload is not None:
            edited = validate_edit(payload, entry.payment_id)
        payment_id = edited.key if edited is not None else entry.payment_id
        if payment_id:
            payment = await self.store.payment(payment_id)
            refusal = payment_refusal(payment.status if payment is not None else None)
            if payment is not None and refusal is not None:
                raise Conflict(
                    f"payment {payment_id} already {payment.status}: a final payment is "
                    "never replayed (nothing was published)",
                    refusal,
                )
            await self.truth_check(payment_id, payment.status if payment is not None else None)
        if not await self.store.claim_for_replay(entry_id, self.stale_before()):
            current = await find_entry(self.store, entry_id)
            check_replayable(current, None)
            raise Conflict("entry is being replayed by another call", "replay_in_progress")
        done = await self.publish_claimed(actor, entry.claimed(), edited)
        return ReplayResult(
            id=entry_id,
            status=done.status,
            payment_id=payment_id,
            edited=edited is not None,
            replayed_at=done.replayed_at,
            replayed_by=done.replayed_by,
        )

    async def publish_claimed(
        self, actor: Actor, entry: ClaimedEntry, edited: PaymentRequest | None = None
    ) -> Entry:
        """Publish one claimed entry; ``replayed`` after the confirm, back to ``parked`` (and
        ``Unavailable`` raised) if the broker did not confirm."""
        message = replay_message(entry, edited)
        try:
            await self.publisher.publish_request(message.body, message.headers, message.message_id)
        except PublishNotConfirmed as exc:
            self._observe("replay", "failed", None)
            try:
                await self.store.abort_replay(entry.id)
            except Exception:
                log.exception("could not return entry %s to parked", entry.id)
            raise Unavailable(f"the broker did not confirm the replay: {exc}") from exc
        except BaseException:
            # Cancelled or crashed mid-publish: we cannot know if it went out; leave the
            # entry claimed ("replaying") rather than risk a second publish.
            log.error(
                "replay of %s interrupted; entry left in 'replaying' (a replay may take it "
                "over after %s)",
                entry.id,
                self.stale_replay_after,
            )
            raise
        body_text = message.body.decode() if edited is not None else None
        done = await self.store.finish_replay(entry.id, actor.name or "?", body_text)
        self._observe("replay", "replayed", None)
        log.info(
            "dlq entry replayed",
            extra={"entry_id": entry.id, "actor": actor.name, "edited": edited is not None},
        )
        try:
            await self.publisher.publish_event(
                "payment.replayed",
                {
                    "payment_id": message.message_id,
                    "status": "replayed",
                    "dlq_entry_id": entry.id,
                    "replayed_by": actor.name,
                    "edited": edited is not None,
                    "processed_at": (done.replayed_at or self._clock()).isoformat(),
                },
            )
        except Exception as exc:  # events are optional to consume and to deliver
            log.warning("payment.replayed event not published: %s", exc)
        return done

    # ---- many claimed entries ----------------------------------------------------------

    async def publish_batch(self, actor: Actor, entries: Sequence[ClaimedEntry]) -> Published:
        """Publish claimed entries paced by the token bucket, all their confirms in flight,
        then settle them in one transaction: ``replayed`` exactly for the confirmed
        publishes, back to ``parked`` for the refused ones. Cancelled mid-batch, the entries
        stay claimed (``replaying``): which publishes went out is unknown. An unexpected
        error of a publish leaves its entries claimed and is raised after the rest settled.

        The ``payment.replayed`` events of the settled entries are published in the
        background, after those of the previous batch went out: optional to consume and to
        deliver, they need not hold up the caller's next round."""
        messages = [replay_message(entry) for entry in entries]
        batches: list[tuple[int, asyncio.Task[list[PublishNotConfirmed | None]]]] = []
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
            # Cancelled mid-batch: which publishes went out is unknown; leave the entries
            # claimed ("replaying") rather than risk a second publish.
            for _, task in batches:
                task.cancel()
            log.error(
                "replay batch interrupted; %d entries left in 'replaying' (a replay may take "
                "them over after %s)",
                len(entries),
                self.stale_replay_after,
            )
            raise
        replayed: list[ClaimedEntry] = []
        failed: list[Failed] = []
        unknown: BaseException | None = None
        for (first, _), answer in zip(batches, answers, strict=True):
            if isinstance(answer, BaseException):
                # A bug, not a broker answer: these entries stay claimed, the call fails.
                unknown = unknown or answer
                continue
            for entry, error in zip(entries[first : first + len(answer)], answer, strict=True):
                if error is None:
                    replayed.append(entry)
                else:
                    failed.append(
                        Failed(
                            id=entry.id,
                            error=f"the broker did not confirm the replay: {error}"[:300],
                        )
                    )
        replayed_ids = [entry.id for entry in replayed]
        when = await self.store.finish_many_replays(
            replayed_ids, [f.id for f in failed], actor.name or "?"
        )
        for _ in replayed:
            self._observe("replay", "replayed", None)
        for _ in failed:
            self._observe("replay", "failed", None)
        log.info(
            "dlq entries replayed",
            extra={"actor": actor.name, "replayed": len(replayed), "failed": len(failed)},
        )
        await self.announced()
        self._announcing = asyncio.create_task(self._announce(actor, replayed, when))
        if unknown is not None:
            raise unknown
        return Published(replayed_ids, failed)

    async def announced(self) -> None:
        """Wait until the ``payment.replayed`` events of the latest batch went out (or failed:
        that is only logged)."""
        task, self._announcing = self._announcing, None
        if task is not None:
            await task

    def stop_announcing(self) -> None:
        """Give up publishing the events of the latest batch (the job was stopped)."""
        task, self._announcing = self._announcing, None
        if task is not None:
            task.cancel()

    async def _announce(self, actor: Actor, entries: list[ClaimedEntry], when: datetime) -> None:
        """``payment.replayed`` for each replayed entry, pipelined; events are optional to
        consume and to deliver, so a failure is only logged."""
        at = when.isoformat()
        events = [
            (
                "payment.replayed",
                {
                    "payment_id": entry.payment_id or entry.message_id,
                    "status": "replayed",
                    "dlq_entry_id": entry.id,
                    "replayed_by": actor.name,
                    "edited": False,
                    "processed_at": at,
                },
            )
            for entry in entries
        ]
        try:
            errors = await self.publisher.publish_events(events)
        except Exception:
            log.exception("%d payment.replayed events not published", len(events))
            return
        if errors:
            log.warning("%d payment.replayed events not published: %s", len(errors), errors[0])
