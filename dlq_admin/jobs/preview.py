"""The dry run of ``POST /dlq/replay``: what a job over the selection would replay, and what
it would skip, why.

The selection is frozen exactly as the job would freeze it (``planner.freeze``, then the
merchant interleaving), so the ids come in the order the job would publish them. Each
entry then goes through the replay rules a job applies (``selection.checked_batches``): not
parked, payment already final, payment ``unknown``, past the idempotency window with no
lookup answer... each reported in ``skipped`` with why. Ids asked for that are not in the
frozen selection are reported too: ``not_found``, or ``not_selected`` when the entry exists
but does not match the selection's other criteria. Nothing is published or changed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from dlq_admin.audit import Actor, AuditLog, Detail, audited
from dlq_admin.jobs.planner import PAGE, checked, freeze, interleave, selection_target
from dlq_admin.ports import BrowseStore
from dlq_admin.replay_truth import BatchSkipCheck
from dlq_admin.rows import Entry
from dlq_admin.selection import BulkState, checked_batches
from schemas.dlq import BulkReplayResult, Skipped
from schemas.replay_jobs import ReplaySelection


def _describe(result: BulkReplayResult) -> tuple[str, Detail]:
    return "dry_run", {
        "would_replay": result.would_replay,
        "skipped": len(result.skipped),
        "ids": result.ids[:100],
    }


def _target(selection: ReplaySelection) -> str:
    return selection_target(selection)


class ReplayPreview:
    """``DlqAdmin.replay_selection`` with ``dry_run``."""

    def __init__(self, store: BrowseStore, audit_log: AuditLog) -> None:
        self.store = store
        self.audit_log = audit_log
        self.truth_skips: BatchSkipCheck | None = None
        """Outcome truth (``replay_truth``): entries to skip past the idempotency window."""

    @audited("dlq.bulk_replay", _target, _describe)
    async def preview(self, actor: Actor, selection: ReplaySelection) -> BulkReplayResult:
        """The entries a job over ``selection`` would replay, in its order; the skipped, why."""
        frozen = await freeze(self.store, selection)
        by_id = {entry.id: entry for entry in frozen}
        state = BulkState()
        ids = checked(selection).ids  # without text no entry id can hold
        if ids is not None:
            await self._unselected(ids, by_id, state)
        ordered = [by_id[f.entry_id] for f in interleave(frozen)]
        chosen: list[str] = []
        async for batch in checked_batches(
            self.store, _pairs(ordered), state, True, truth_skips=self.truth_skips
        ):
            chosen.extend(entry.id for entry in batch)
        return BulkReplayResult(
            dry_run=True,
            replayed=0,
            would_replay=len(chosen),
            ids=chosen,
            skipped=state.skipped,
            failed=[],
        )

    async def _unselected(self, ids: list[str], frozen: dict[str, Entry], state: BulkState) -> None:
        """Report the ids asked for that the frozen selection left out, and why."""
        missing = [i for i in dict.fromkeys(ids) if i not in frozen]
        for start in range(0, len(missing), PAGE):
            chunk = missing[start : start + PAGE]
            found = await self.store.get_entries(chunk)
            state.skipped.extend(
                Skipped(id=i, why="not_selected" if i in found else "not_found") for i in chunk
            )


async def _pairs(entries: list[Entry]) -> AsyncIterator[tuple[str, Entry | None]]:
    for entry in entries:
        yield entry.id, entry
