"""Groups: entries by failure fingerprint (count, first and last seen, a sample error), each
with "Replay this group" (a replay job, created by ``pages.new_job`` after its dry run)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from dlq_admin.console.deps import ConsoleDep, ConsoleRoute, Me, render
from dlq_admin.console.inputs import reason_of, status_of
from dlq_admin.console.optional import jobs_of
from schemas.dlq import EntryStatus
from schemas.outcome import ParkReason

router = APIRouter(prefix="/ui", route_class=ConsoleRoute, include_in_schema=False)


@router.get("/groups", name="console.groups")
async def groups_page(
    request: Request,
    console: ConsoleDep,
    _me: Me,
    status: Annotated[str | None, Query(max_length=20)] = None,
    reason: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    chosen_status = status_of(status) or EntryStatus.PARKED
    chosen_reason = reason_of(reason)
    found = await console.service.groups(chosen_status, chosen_reason, 200)
    return render(
        request,
        "groups.html",
        nav="groups",
        groups=found.items,
        status=chosen_status.value,
        reason=chosen_reason.value if chosen_reason else "",
        statuses=[s.value for s in EntryStatus],
        reasons=[r.value for r in ParkReason],
        jobs_available=jobs_of(console.service) is not None,
    )
