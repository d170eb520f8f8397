"""The audit log (filter by actor, action, outcome; paged newest first) and payment lookup by
id (the payment as the worker stored it, and its DLQ entries)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from dlq_admin.console.deps import ConsoleDep, ConsoleRoute, Me, render
from dlq_admin.console.inputs import text_of
from dlq_admin.errors import InvalidInput, NotFound
from dlq_admin.ports import EntryFilters
from schemas.dlq import AuditPage, DlqEntrySummary, PaymentView

router = APIRouter(prefix="/ui", route_class=ConsoleRoute, include_in_schema=False)

Text = Annotated[str | None, Query(max_length=200)]


@router.get("/audit", name="console.audit")
async def audit_page(
    request: Request,
    console: ConsoleDep,
    _me: Me,
    actor: Text = None,
    action: Text = None,
    outcome: Text = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    shown = {"actor": actor or "", "action": action or "", "outcome": outcome or ""}
    found = AuditPage(items=[], next_cursor=None)
    error = None
    try:
        found = await console.service.audit_page(
            50,
            cursor,
            text_of("actor", actor, 100),
            text_of("action", action, 64),
            text_of("outcome", outcome, 32),
        )
    except InvalidInput as exc:
        error = exc.message
    kept = {k: v for k, v in shown.items() if v}
    older = (
        "/ui/audit?" + urlencode({**kept, "cursor": found.next_cursor})
        if found.next_cursor
        else None
    )
    return render(request, "audit.html", nav="audit", page=found, f=shown, error=error, older=older)


@router.get("/payments", name="console.payment")
async def payment_page(
    request: Request,
    console: ConsoleDep,
    _me: Me,
    payment_id: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    wanted = (payment_id or "").strip()
    payment: PaymentView | None = None
    entries: list[DlqEntrySummary] = []
    error = None
    status = 200
    if wanted:
        try:
            payment = await console.service.payment(wanted)
        except NotFound:
            error = "No payment with that id."
            status = 404
        except InvalidInput as exc:
            error = exc.message
            status = 422
        if status != 422:
            try:
                found = await console.service.list_entries(EntryFilters(payment_id=wanted), 50)
                entries = found.items
            except InvalidInput as exc:
                error = exc.message
    return render(
        request,
        "payment.html",
        status,
        nav="payments",
        wanted=wanted,
        payment=payment,
        entries=entries,
        error=error,
    )
