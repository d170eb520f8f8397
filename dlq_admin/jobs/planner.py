"""The frozen selection of a job: which entries it replays, in which order.

The selection is read once, when the job is created (or previewed by a dry run): entries
parked later never join the job. Entries selected by id are taken as they are found (any
status: the runner skips what is not replayable, with why); entries selected by filters
(reason, group, merchant, time window, status) are read oldest first, a page at a time.

The order is fair: entries are interleaved by merchant, round-robin, each merchant's own
entries oldest first, so one merchant's 10,000 parked payments do not delay another's 10.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime

from dlq_admin.jobs.model import FrozenEntry
from dlq_admin.ports import EntryFilters, EntryReader
from dlq_admin.rows import Entry
from schemas.replay_jobs import MAX_JOB_ENTRIES, JobSelection

PAGE = 1000
"""Entries read per query while freezing a selection."""


def selection_filters(selection: JobSelection) -> EntryFilters:
    return EntryFilters(
        reason=selection.reason,
        status=selection.status,
        merchant_id=selection.merchant_id,
        since=selection.since,
        until=selection.until,
        fingerprint=selection.group,
    )


def selection_target(selection: JobSelection) -> str:
    """The audit target of a job's creation: its criteria, briefly."""
    parts: list[str] = []
    if selection.ids is not None:
        shown = ",".join(selection.ids[:10])
        more = f" (+{len(selection.ids) - 10})" if len(selection.ids) > 10 else ""
        parts.append(f"ids:{shown}{more}")
    for name in ("reason", "group", "merchant_id", "since", "until"):
        value = getattr(selection, name)
        if value is not None:
            text = value.isoformat() if isinstance(value, datetime) else str(value)
            parts.append(f"{name}:{text}")
    return " ".join(parts)[:500]


async def freeze(store: EntryReader, selection: JobSelection) -> list[Entry]:
    """The entries the selection matches now, oldest first (ids: in the order given).
    Ids combined with other criteria keep only the entries that match them too."""
    limit = min(selection.limit or MAX_JOB_ENTRIES, MAX_JOB_ENTRIES)
    if selection.ids is not None:
        found: list[Entry] = []
        ids = [i for i in dict.fromkeys(selection.ids) if "\x00" not in i]
        for start in range(0, len(ids), PAGE):
            chunk = ids[start : start + PAGE]
            by_id = await store.get_entries(chunk)
            found.extend(by_id[i] for i in chunk if i in by_id and _matches(by_id[i], selection))
            if len(found) >= limit:
                break
        return found[:limit]
    filters = selection_filters(selection)
    out: list[Entry] = []
    after: tuple[datetime, str] | None = None
    while len(out) < limit:
        want = min(PAGE, limit - len(out))
        page = await store.list_entries(filters, want, after, oldest_first=True)
        out.extend(page)
        if len(page) < want:
            break
        after = (page[-1].dead_lettered_at, page[-1].id)
    return out[:limit]


def _matches(entry: Entry, selection: JobSelection) -> bool:
    """Whether an entry picked by id also matches the selection's other criteria (the
    status criterion does not apply to ids: the runner reports what it skips)."""
    if selection.reason is not None and entry.reason is not selection.reason:
        return False
    if selection.group is not None and entry.fingerprint != selection.group:
        return False
    if selection.merchant_id is not None and entry.merchant_id != selection.merchant_id:
        return False
    if selection.since is not None and entry.dead_lettered_at < selection.since:
        return False
    return not (selection.until is not None and entry.dead_lettered_at >= selection.until)


def interleave(found: Iterable[Entry]) -> list[FrozenEntry]:
    """Round-robin by merchant: the first entry of every merchant, then the second of every
    merchant, and so on; merchants in the order their oldest entry appears."""
    queues: OrderedDict[str, list[Entry]] = OrderedDict()
    for entry in found:
        queues.setdefault(entry.merchant_id or "", []).append(entry)
    ordered: list[FrozenEntry] = []
    depth = 0
    lists = list(queues.values())
    while lists:
        remaining = []
        for queue in lists:
            entry = queue[depth]
            ordered.append(FrozenEntry(entry.id, entry.payment_id, entry.merchant_id))
            if depth + 1 < len(queue):
                remaining.append(queue)
        lists = remaining
        depth += 1
    return ordered


def by_merchant(frozen: Iterable[FrozenEntry]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in frozen:
        key = entry.merchant_id or "(none)"
        counts[key] = counts.get(key, 0) + 1
    return counts
