"""Replay jobs: the list, one job's live progress, and pause / resume / cancel.

The job page polls ``/ui/jobs/{id}/progress.json`` (its script) and reloads itself when the
job changes state, so the buttons always match; without script it refreshes itself
(``<noscript>`` meta refresh) while the job is not final.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from dlq_admin.console.deps import ConsoleDep, ConsoleRoute, Me, OperatorForm, render
from dlq_admin.console.inputs import text_of
from dlq_admin.console.optional import Jobs, jobs_of
from dlq_admin.console.render import ago
from dlq_admin.errors import Unavailable
from schemas.replay_jobs import ReplayJobView

router = APIRouter(prefix="/ui", route_class=ConsoleRoute, include_in_schema=False)

JobId = Annotated[str, Path(max_length=200)]


def _jobs(console: ConsoleDep) -> Jobs:
    jobs = jobs_of(console.service)
    if jobs is None:
        raise Unavailable("replay jobs are not available in this admin")
    return jobs


def counts(job: ReplayJobView) -> dict[str, str]:
    waiting = max(job.total - job.published - job.skipped, 0)
    following = max(job.published - job.succeeded - job.failed, 0)
    return {
        "state": job.state.value,
        "total": str(job.total),
        "published": str(job.published),
        "skipped": str(job.skipped),
        "waiting": str(waiting),
        "succeeded": str(job.succeeded),
        "failed": str(job.failed),
        "following": str(following),
        "eta": ago(job.eta_seconds) if job.eta_seconds is not None else "-",
        "done": str(job.published + job.skipped),
    }


@router.get("/jobs", name="console.jobs")
async def jobs_page(
    request: Request,
    console: ConsoleDep,
    _me: Me,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    jobs = jobs_of(console.service)
    if jobs is None:
        return render(request, "jobs.html", nav="jobs", available=False, items=[], older=None)
    found = await jobs.list_jobs(limit=50, cursor=cursor)
    older = f"/ui/jobs?cursor={found.next_cursor}" if found.next_cursor else None
    return render(request, "jobs.html", nav="jobs", available=True, items=found.items, older=older)


@router.get("/jobs/progress.json", name="console.jobs_progress")
async def jobs_progress(console: ConsoleDep, _me: Me) -> Response:
    """The first page's figures, for the list's script: ``job-<id>-<figure>`` names."""
    found = await _jobs(console).list_jobs(limit=50)
    figures: dict[str, str] = {}
    values: dict[str, int] = {}
    for job in found.items:
        for name, value in counts(job).items():
            figures[f"job-{job.id}-{name}"] = value
        values[f"job-{job.id}"] = job.published + job.skipped
    return JSONResponse({"counts": figures, "values": values})


@router.get("/jobs/{job_id}", name="console.job")
async def job_page(request: Request, console: ConsoleDep, _me: Me, job_id: JobId) -> Response:
    job = await _jobs(console).get(job_id)
    return render(request, "job.html", nav="jobs", job=job, counts=counts(job))


@router.get("/jobs/{job_id}/progress.json", name="console.job_progress")
async def job_progress(
    console: ConsoleDep,
    _me: Me,
    job_id: JobId,
    state: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    job = await _jobs(console).get(job_id)
    return JSONResponse(
        {
            "counts": counts(job),
            "values": {"done": job.published + job.skipped},
            "reload": state is not None and state != job.state.value,
        }
    )


@router.post("/jobs/{job_id}/pause", name="console.job_pause")
async def pause(console: ConsoleDep, form: OperatorForm, job_id: JobId) -> Response:
    reason = text_of("reason", form.get("reason"), 300)
    await _jobs(console).pause(form.actor, job_id, reason)
    return RedirectResponse(f"/ui/jobs/{job_id}", status_code=303)


@router.post("/jobs/{job_id}/resume", name="console.job_resume")
async def resume(console: ConsoleDep, form: OperatorForm, job_id: JobId) -> Response:
    await _jobs(console).resume(form.actor, job_id)
    return RedirectResponse(f"/ui/jobs/{job_id}", status_code=303)


@router.post("/jobs/{job_id}/cancel", name="console.job_cancel")
async def cancel(console: ConsoleDep, form: OperatorForm, job_id: JobId) -> Response:
    await _jobs(console).cancel(form.actor, job_id)
    return RedirectResponse(f"/ui/jobs/{job_id}", status_code=303)
