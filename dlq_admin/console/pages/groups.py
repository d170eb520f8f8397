"""Groups: parked entries by failure fingerprint, and "Replay this group" as a replay job.

Replaying a group is two steps: a dry run shows how many entries the job would freeze (and
for which merchants); only the confirmation creates the job (``DlqAdmin.jobs.create``, the
call ``POST /dlq/replay-jobs`` makes), then the browser is sent to the job's page.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import RedirectResponse, Response

from dlq_admin.console.deps import ConsoleDep, ConsoleRoute, Me, OperatorForm, render
from dlq_admin.console.inputs import reason_of, status_of
from dlq_admin.console.optional import Jobs, jobs_of
from dlq_admin.errors import InvalidInput, Unavailable
from schemas.dlq import EntryStatus
from schemas.outcome import ParkReason
from schemas.replay_jobs import ReplayJobCreate, ReplayJobDryRun

router = APIRouter(prefix="/ui", route_class=ConsoleRoute, include_in_schema=False)


def _jobs(console: ConsoleDep) -> Jobs:
    jobs = jobs_of(console.service)
    if jobs is None:
        raise Unavailable("replay jobs are not available in this admin")
    return jobs


def _fingerprint(value: str | None) -> str:
    if not value or len(value) > 400:
        raise InvalidInput("fingerprint: required (at most 400 characters)")
    return value


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


@router.post("/groups/replay", name="console.group_replay_preview")
async def group_replay_preview(
    request: Request, console: ConsoleDep, form: OperatorForm
) -> Response:
    fingerprint = _fingerprint(form.get("fingerprint"))
    result = await _jobs(console).create(
        form.actor, ReplayJobCreate(group=fingerprint, dry_run=True)
    )
    total = result.total
    by_merchant = result.by_merchant if isinstance(result, ReplayJobDryRun) else {}
    return render(
        request,
        "group_replay.html",
        nav="groups",
        fingerprint=fingerprint,
        total=total,
        by_merchant=sorted(by_merchant.items(), key=lambda kv: -kv[1])[:20],
        sample=result.ids[:10] if isinstance(result, ReplayJobDryRun) else [],
    )


@router.post("/groups/replay/create", name="console.group_replay")
async def group_replay(console: ConsoleDep, form: OperatorForm) -> Response:
    fingerprint = _fingerprint(form.get("fingerprint"))
    result = await _jobs(console).create(form.actor, ReplayJobCreate(group=fingerprint))
    if isinstance(result, ReplayJobDryRun):  # the engine answered a dry run: show it again
        return RedirectResponse("/ui/groups", status_code=303)
    return RedirectResponse(f"/ui/jobs/{result.id}", status_code=303)
