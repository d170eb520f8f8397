"""Browse: page through entries, show one whole, count them, group them by failure, and
show a payment as the worker stored it. Read-only; nothing here is audited."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from dlq_admin.errors import NotFound
from dlq_admin.paging import decode_entry_cursor, encode_entry_cursor
from dlq_admin.parse import clean
from dlq_admin.ports import BrowseStore, EntryFilters, EntryReader, QueueProbe
from dlq_admin.rows import FullEntry
from dlq_admin.validation import checked_filters
from dlq_admin.views import detail, payment_view, summary
from schemas.dlq import (
    DlqEntryDetail,
    DlqGroup,
    DlqGroups,
    DlqPage,
    DlqStats,
    EntryStatus,
    PaymentView,
    QueueStats,
)
from schemas.outcome import ParkReason


async def find_entry(store: EntryReader, entry_id: str) -> FullEntry:
    """The entry with this id; ``NotFound`` if there is none."""
    entry = await store.get_entry(entry_id) if "\x00" not in entry_id else None
    if entry is None:
        raise NotFound(f"no DLQ entry {clean(entry_id, 80)!r}")
    return entry


class Browse:
    def __init__(
        self,
        store: BrowseStore,
        probe: QueueProbe,
        *,
        queue_name: str,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.probe = probe
        self.queue_name = queue_name
        self._clock = clock
        self.unknown_counts: Callable[[], Awaitable[tuple[int, datetime | None]]] | None = None
        """``unknown`` payments and the oldest one's since-when (outcome truth), for ``stats``."""

    async def list_entries(
        self, filters: EntryFilters, limit: int, cursor: str | None = None
    ) -> DlqPage:
        filters = checked_filters(filters)
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
        entry = await find_entry(self.store, entry_id)
        chain = await self.store.chain(entry_id)
        payment_id = entry.payment_id
        history = await self.store.attempts(payment_id) if payment_id else []
        payment = await self.store.payment(payment_id) if payment_id else None
        return detail(entry, chain, history, payment)

    async def stats(self) -> DlqStats:
        counts = await self.store.counts()
        oldest = await self.store.oldest_parked()
        by_reason: dict[str, int] = {}
        by_status: dict[str, int] = {s.value: 0 for s in EntryStatus}
        parked_by_reason: dict[str, int] = {}
        for c in counts:
            by_reason[c.reason] = by_reason.get(c.reason, 0) + c.count
            by_status[c.status] = by_status.get(c.status, 0) + c.count
            if c.status == EntryStatus.PARKED.value:
                parked_by_reason[c.reason] = parked_by_reason.get(c.reason, 0) + c.count
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
                    fingerprint=g.fingerprint,
                    reason=g.reason,
                    error_code=g.error_code,
                    http_status=g.http_status,
                    exception_type=g.exception_type,
                    count=g.count,
                    first_seen=g.first_seen,
                    last_seen=g.last_seen,
                    sample_id=g.sample_id,
                    sample_error=g.sample_error,
                )
                for g in rows
            ],
        )

    async def payment(self, payment_id: str) -> PaymentView:
        if "\x00" in payment_id:
            raise NotFound(f"no payment {clean(payment_id, 80)!r}")
        found = await self.store.payment(payment_id)
        if found is None:
            raise NotFound(f"no payment {clean(payment_id, 80)!r}")
        return payment_view(found)
