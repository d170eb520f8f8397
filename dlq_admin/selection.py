"""Which entries a bulk call acts on, each one not taken reported in ``skipped`` with why.

A bulk discard's ``BulkSelection`` (ids, reason or group) is turned into batches of parked
entries (``parked_batches``): entries selected by reason or group are parked ones, oldest
first, read a page at a time (keyset); entries selected by id are looked up a page at a time
and may be missing or in any status. The dry run of a replay job (``jobs.preview``) checks
its candidates with ``checked_batches``: an entry whose payment is already final or
``unknown``, or that outcome truth refuses, is skipped too (one ``payment_statuses`` query
per page).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime

from dlq_admin.ports import BrowseStore, EntryFilters, EntryReader
from dlq_admin.replay_rules import payment_refusal
from dlq_admin.replay_truth import BatchSkipCheck
from dlq_admin.rows import Entry
from schemas.dlq import BulkSelection, EntryStatus, Skipped
from schemas.outcome import PaymentStatus

PAGE = 200
"""Candidates read (and payment statuses checked) per query."""


@dataclass
class BulkState:
    """What a bulk call left out so far, and why."""

    skipped: list[Skipped] = field(default_factory=list)


def selection_target(selection: BulkSelection) -> str:
    """The audit target of a bulk call: its ids (the first 20), reason or group."""
    if selection.ids is not None:
        shown = ",".join(selection.ids[:20])
        more = f" (+{len(selection.ids) - 20})" if len(selection.ids) > 20 else ""
        return f"ids:{shown}{more}"
    if selection.reason is not None:
        return f"reason:{selection.reason.value}"
    return f"group:{selection.group}"


async def candidates(
    store: EntryReader, selection: BulkSelection, page: int = PAGE
) -> AsyncIterator[tuple[str, Entry | None]]:
    """``(id, entry)`` pairs to consider, oldest first; ``entry`` None for unknown ids."""
    if selection.ids is not None:
        ids = list(dict.fromkeys(selection.ids))
        for start in range(0, len(ids), page):
            chunk = ids[start : start + page]
            found = await store.get_entries([i for i in chunk if "\x00" not in i])
            for entry_id in chunk:
                yield entry_id, found.get(entry_id)
        return
    filters = EntryFilters(
        status=EntryStatus.PARKED, reason=selection.reason, fingerprint=selection.group
    )
    after: tuple[datetime, str] | None = None
    while True:
        entries = await store.list_entries(filters, page, after, oldest_first=True)
        for entry in entries:
            yield entry.id, entry
        if len(entries) < page:
            return
        after = (entries[-1].dead_lettered_at, entries[-1].id)


def _parked(entry_id: str, entry: Entry | None, state: BulkState) -> Entry | None:
    """``entry`` if it exists and is parked; else None with the reason in ``skipped``."""
    if entry is None:
        state.skipped.append(Skipped(id=entry_id, why="not_found"))
        return None
    if entry.status is not EntryStatus.PARKED:
        state.skipped.append(Skipped(id=entry_id, why=f"status_{entry.status.value}"))
        return None
    return entry


async def checked_batches(
    store: BrowseStore,
    pairs: AsyncIterator[tuple[str, Entry | None]],
    state: BulkState,
    dry_run: bool,
    page: int = PAGE,
    truth_skips: BatchSkipCheck | None = None,
) -> AsyncIterator[list[Entry]]:
    """Batches of the parked entries among ``pairs`` whose payment is not final nor
    ``unknown``; the rest goes to ``skipped``. One ``payment_statuses`` query per batch of
    ``page`` candidates; then ``truth_skips`` (outcome truth: past the idempotency window)
    names more to skip."""
    batch: list[tuple[str, Entry | None]] = []

    async def flush() -> list[Entry]:
        found = [entry for _, entry in batch if entry is not None]
        payment_ids = [e.payment_id for e in found if e.payment_id]
        statuses = await store.payment_statuses(payment_ids) if payment_ids else {}
        ready: list[Entry] = []
        for entry_id, maybe in batch:
            entry = _parked(entry_id, maybe, state)
            if entry is None:
                continue
            status = statuses.get(entry.payment_id) if entry.payment_id else None
            refusal = payment_refusal(status)
            if refusal is not None:
                state.skipped.append(Skipped(id=entry_id, why=refusal))
            elif status == PaymentStatus.UNKNOWN.value:
                state.skipped.append(Skipped(id=entry_id, why="payment_unknown"))
            else:
                ready.append(entry)
        batch.clear()
        if ready and truth_skips is not None:
            pairs = [(e.id, e.payment_id) for e in ready if e.payment_id]
            skips = await truth_skips(pairs, dry_run)
            state.skipped.extend(Skipped(id=i, why=w) for i, w in skips.items())
            ready = [e for e in ready if e.id not in skips]
        return ready

    async for pair in pairs:
        batch.append(pair)
        if len(batch) >= page:
            yield await flush()
    if batch:
        yield await flush()


async def parked_batches(
    store: EntryReader, selection: BulkSelection, state: BulkState
) -> AsyncIterator[list[Entry]]:
    """Batches of the parked entries of ``selection`` (a discard: a final payment does not
    protect an entry); the rest goes to ``skipped``."""
    batch: list[Entry] = []
    async for entry_id, maybe in candidates(store, selection):
        entry = _parked(entry_id, maybe, state)
        if entry is not None:
            batch.append(entry)
        if len(batch) >= PAGE:
            yield batch
            batch = []
    if batch:
        yield batch
