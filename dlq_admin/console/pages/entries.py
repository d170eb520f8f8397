"""Entries: the DLQ listing with filters (reason, status, merchant, payment id, time window,
group), newest first, paged with the API's keyset cursor so a page never shifts while new
entries are parked."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from dlq_admin.console.deps import ConsoleDep, ConsoleRoute, Me, render
from dlq_admin.console.inputs import reason_of, status_of, text_of, time_of
from dlq_admin.console.optional import jobs_of
from dlq_admin.errors import InvalidInput
from dlq_admin.ports import EntryFilters
from schemas.dlq import DlqPage, EntryStatus
from schemas.outcome import ParkReason

router = APIRouter(prefix="/ui", route_class=ConsoleRoute, include_in_schema=False)

PAGE = 50
Text = Annotated[str | None, Query(max_length=400)]


@router.get("/entries", name="console.entries")
async def entries_page(
    request: Request,
    console: ConsoleDep,
    _me: Me,
    reason: Text = None,
    status: Text = None,
    merchant: Text = None,
    payment: Text = None,
    since: Text = None,
    until: Text = None,
    group: Text = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    shown = {
        "reason": reason or "",
        "status": status or "",
        "merchant": merchant or "",
        "payment": payment or "",
        "since": since or "",
        "until": until or "",
        "group": group or "",
    }
    error = None
    found = DlqPage(items=[], next_cursor=None)
    try:
        filters = EntryFilters(
            reason=reason_of(reason),
            status=status_of(status),
            merchant_id=text_of("merchant", merchant, 255),
            payment_id=text_of("payment", payment, 64),
            since=time_of("since", since),
            until=time_of("until", until),
            fingerprint=text_of("group", group, 400),
        )
        found = await console.service.list_entries(filters, PAGE, cursor)
    except InvalidInput as exc:
        error = exc.message
    kept = {k: v for k, v in shown.items() if v}
    older = None
    if found.next_cursor:
        older = "/ui/entries?" + urlencode({**kept, "cursor": found.next_cursor})
    newest = "/ui/entries" + ("?" + urlencode(kept) if kept else "")
    return render(
        request,
        "entries.html",
        nav="entries",
        page=found,
        f=shown,
        error=error,
        older=older,
        newest=newest if cursor else None,
        statuses=[s.value for s in EntryStatus],
        reasons=[r.value for r in ParkReason],
        jobs_available=jobs_of(console.service) is not None,
    )
