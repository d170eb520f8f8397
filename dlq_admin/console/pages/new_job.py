"""Creating a replay job from the console: "Replay this group" (Groups) and "Replay matching
as a job" (a filtered Entries page).

Two steps: a dry run shows how many parked entries the job would freeze now (and for which
merchants), and publishes nothing; only "Create replay job" on that page creates the job
(``DlqAdmin.jobs.create``, the call ``POST /dlq/replay-jobs`` makes, audited the same way),
and the browser is sent to the job's page to watch it.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response

from dlq_admin.console.deps import ConsoleDep, ConsoleRoute, OperatorForm, Posted, render
from dlq_admin.console.inputs import reason_of, text_of, time_of
from dlq_admin.console.optional import Jobs, jobs_of
from dlq_admin.errors import InvalidInput, Unavailable
from schemas.replay_jobs import ReplayJobCreate, ReplayJobDryRun

router = APIRouter(prefix="/ui", route_class=ConsoleRoute, include_in_schema=False)

FIELDS = ("reason", "group", "merchant", "since", "until")
"""The selection, named as the Entries filters name it."""


def _jobs(console: ConsoleDep) -> Jobs:
    jobs = jobs_of(console.service)
    if jobs is None:
        raise Unavailable("replay jobs are not available in this admin")
    return jobs


def job_request(form: Posted, *, dry_run: bool) -> ReplayJobCreate:
    """The job the posted selection asks for (parked entries only)."""
    try:
        return ReplayJobCreate(
            reason=reason_of(form.get("reason")),
            group=text_of("group", form.get("group"), 400),
            merchant_id=text_of("merchant", form.get("merchant"), 200),
            since=time_of("since", form.get("since")),
            until=time_of("until", form.get("until")),
            dry_run=dry_run,
        )
    except ValidationError as exc:
        messages = "; ".join(str(e["msg"]) for e in exc.errors(include_input=False)[:3])
        raise InvalidInput(f"not a job selection: {messages}") from None


@router.post("/replay-jobs/preview", name="console.job_preview")
async def preview(request: Request, console: ConsoleDep, form: OperatorForm) -> Response:
    result = await _jobs(console).create(form.actor, job_request(form, dry_run=True))
    dry = result if isinstance(result, ReplayJobDryRun) else None
    chosen = {name: form.get(name) for name in FIELDS if form.get(name)}
    return render(
        request,
        "new_job.html",
        nav="jobs",
        chosen=chosen,
        total=result.total,
        by_merchant=sorted((dry.by_merchant if dry else {}).items(), key=lambda kv: -kv[1])[:20],
    )


@router.post("/replay-jobs", name="console.job_create")
async def create(console: ConsoleDep, form: OperatorForm) -> Response:
    result = await _jobs(console).create(form.actor, job_request(form, dry_run=False))
    if isinstance(result, ReplayJobDryRun):
        return RedirectResponse("/ui/jobs", status_code=303)
    return RedirectResponse(f"/ui/jobs/{result.id}", status_code=303)
