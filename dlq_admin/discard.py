"""Discard: mark parked entries ``discarded``. The row stays (nothing is ever deleted) and the
audit log says who discarded it and why."""

from __future__ import annotations

from dataclasses import dataclass

from dlq_admin.audit import Actor, AuditLog, Detail, audited, entry_target
from dlq_admin.browse import find_entry
from dlq_admin.errors import Conflict
from dlq_admin.ports import DiscardStore
from dlq_admin.selection import BulkState, parked_batches, selection_target
from dlq_admin.views import summary
from schemas.dlq import BulkDiscardResult, BulkSelection, DlqEntrySummary, EntryStatus, Skipped


@dataclass(frozen=True, slots=True)
class Discarded:
    """The entry after a discard; ``changed`` False if it already was discarded."""

    entry: DlqEntrySummary
    changed: bool
    note: str | None


def _describe(result: Discarded) -> tuple[str, Detail]:
    return ("ok" if result.changed else "noop"), {"note": result.note} if result.note else {}


def _describe_bulk(result: BulkDiscardResult) -> tuple[str, Detail]:
    return ("dry_run" if result.dry_run else "ok"), {
        "discarded": result.discarded,
        "skipped": len(result.skipped),
        "ids": result.ids[:100],
    }


class Discard:
    def __init__(self, store: DiscardStore, audit_log: AuditLog) -> None:
        self.store = store
        self.audit_log = audit_log

    @audited("dlq.discard", entry_target, _describe)
    async def discard(self, actor: Actor, entry_id: str, note: str | None = None) -> Discarded:
        """Mark one entry ``discarded`` (a no-op if it already is); 409 unless it is parked."""
        entry = await find_entry(self.store, entry_id)
        if entry.status is EntryStatus.DISCARDED:
            return Discarded(summary(entry), False, note)
        if entry.status is not EntryStatus.PARKED:
            status = entry.status.value
            raise Conflict(
                f"entry is {status}; only parked entries can be discarded", f"entry_{status}"
            )
        if not await self.store.discard(entry_id, actor.name or "?"):
            current = await find_entry(self.store, entry_id)
            if current.status is EntryStatus.DISCARDED:
                return Discarded(summary(current), False, note)
            status = current.status.value
            raise Conflict(f"entry is {status}", f"entry_{status}")
        return Discarded(summary(await find_entry(self.store, entry_id)), True, note)

    @audited("dlq.bulk_discard", selection_target, _describe_bulk)
    async def bulk_discard(self, actor: Actor, selection: BulkSelection) -> BulkDiscardResult:
        """Discard many parked entries (final payments do not protect them)."""
        state = BulkState()
        chosen: list[str] = []
        done: list[str] = []
        async for entries in parked_batches(self.store, selection, state):
            for entry in entries[: selection.limit - len(chosen)]:
                chosen.append(entry.id)
                if selection.dry_run:
                    continue
                if await self.store.discard(entry.id, actor.name or "?"):
                    done.append(entry.id)
                else:
                    state.skipped.append(Skipped(id=entry.id, why="changed_concurrently"))
            if len(chosen) >= selection.limit:
                break
        return BulkDiscardResult(
            dry_run=selection.dry_run,
            discarded=len(done),
            ids=chosen if selection.dry_run else done,
            skipped=state.skipped,
        )
