"""Bulk replay: replay many entries selected by ids, reason or group, rate-limited.

A bulk replay keeps the same order of effects per entry as a single replay
(``dlq_admin.replay``) but works in chunks (``chunk``, 500, fewer when the rate limit is
low), ``concurrency`` (2) chunks in flight: the final payment check is one query per page of
candidates, the claim is one transaction for the chunk, the chunk's messages are published
paced by the token bucket with all their confirms in flight at once, and one transaction
settles the chunk: ``replayed`` exactly for the confirmed publishes, back to ``parked`` for
the refused ones (reported in ``failed``). The ``payment.replayed`` events follow,
pipelined as well.
"""

from __future__ import annotations

import asyncio

from dlq_admin.audit import Actor, AuditLog, Detail, audited
from dlq_admin.ports import ReplayStore
from dlq_admin.replay import Replay
from dlq_admin.replay_truth import BulkReplayCheck
from dlq_admin.rows import Entry
from dlq_admin.selection import BulkState, replayable_batches, selection_target
from schemas.dlq import BulkReplayResult, BulkSelection, Skipped


def _describe(result: BulkReplayResult) -> tuple[str, Detail]:
    return ("dry_run" if result.dry_run else "ok"), {
        "replayed": result.replayed,
        "would_replay": result.would_replay,
        "skipped": len(result.skipped),
        "failed": len(result.failed),
        "ids": result.ids[:100],
    }


class BulkReplay:
    def __init__(
        self,
        store: ReplayStore,
        replay: Replay,
        audit_log: AuditLog,
        *,
        chunk: int = 500,
        concurrency: int = 2,
    ) -> None:
        self.store = store
        self.replay = replay
        self.audit_log = audit_log
        self.chunk = chunk
        """Most entries one chunk claims, publishes and settles together."""
        self.concurrency = concurrency
        """Chunks in flight at once (one is published while the next is claimed and the
        previous one settled)."""
        self.truth_skips: BulkReplayCheck | None = None
        """Outcome truth (``replay_truth``): entries to skip past the idempotency window."""

    def chunk_size(self) -> int:
        """Entries per chunk: ``chunk``, but no more than about half a second of the rate
        limit, so entries do not sit claimed (``replaying``) long before their publish when
        the rate is low."""
        return max(1, min(self.chunk, max(50, int(self.replay.bucket.rate / 2))))

    @audited("dlq.bulk_replay", selection_target, _describe)
    async def bulk_replay(self, actor: Actor, selection: BulkSelection) -> BulkReplayResult:
        """Replay many entries (rate-limited); report replayed, skipped (why) and failed."""
        state = BulkState()
        chosen: list[str] = []
        running: set[asyncio.Task[None]] = set()
        try:
            async for entries in replayable_batches(
                self.store, selection, state, self.chunk_size(), self.truth_skips
            ):
                room = selection.limit - len(chosen)
                if room <= 0:
                    break
                take = entries[:room]
                chosen.extend(e.id for e in take)
                if not selection.dry_run and take:
                    while len(running) >= self.concurrency:
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

    async def _replay_chunk(self, actor: Actor, entries: list[Entry], state: BulkState) -> None:
        """Claim ``entries`` in one transaction, then publish and settle the claimed ones
        (``Replay.publish_batch``); an entry claimed elsewhere meanwhile is skipped."""
        claimed = await self.store.claim_many_for_replay(
            [e.id for e in entries], self.replay.stale_before()
        )
        mine = []
        for entry in entries:
            if entry.id in claimed:
                mine.append(claimed[entry.id])
            else:
                state.skipped.append(Skipped(id=entry.id, why="claimed_elsewhere"))
        if not mine:
            return
        published = await self.replay.publish_batch(actor, mine)
        state.failed.extend(published.failed)
        state.replayed.extend(published.replayed)
