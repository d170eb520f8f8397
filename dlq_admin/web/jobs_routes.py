"""The replay-job routes: create (or preview), list, show, pause, resume, cancel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query
from fastapi.responses import JSONResponse

from dlq_admin.web.deps import Operator, Service, Viewer
from dlq_admin.web.routes import ERROR_TEXT, error_responses
from schemas.dlq import MAX_PAGE
from schemas.replay_jobs import (
    JobPause,
    ReplayJobCreate,
    ReplayJobDryRun,
    ReplayJobPage,
    ReplayJobView,
)

_JOB_ERROR_TEXT = {
    **ERROR_TEXT,
    404: "unknown job id",
    409: "the job's state refuses this (e.g. resuming a running job)",
    503: "database unavailable; nothing was changed",
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return error_responses(*codes, text=_JOB_ERROR_TEXT)


JobId = Annotated[str, Path(description="a replay job id", max_length=64)]
CONTROL_ERRORS = _errors(401, 403, 404, 409, 422, 503)

jobs = APIRouter(prefix="/dlq/replay-jobs", tags=["replay jobs"])


@jobs.post(
    "",
    name="dlq.replay_job.create",
    status_code=201,
    response_model=ReplayJobView,
    responses={
        200: {"model": ReplayJobDryRun, "description": "dry run: the frozen selection"},
        **_errors(401, 403, 422, 503),
    },
    summary="Create a replay job over a frozen selection (rate, ramp, canary; dry_run)",
)
async def create_job(
    service: Service, actor: Operator, request: Annotated[ReplayJobCreate, Body()]
) -> Any:
    result = await service.jobs.create(actor, request)
    if isinstance(result, ReplayJobDryRun):
        return JSONResponse(result.model_dump(mode="json"), status_code=200)
    return result


@jobs.get(
    "",
    name="dlq.replay_job.list",
    response_model=ReplayJobPage,
    responses=_errors(401, 422, 503),
    summary="Replay jobs and their progress, newest first",
)
async def list_jobs(
    service: Service,
    _actor: Viewer,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> ReplayJobPage:
    return await service.jobs.list_jobs(limit, cursor)


@jobs.get(
    "/{job_id}",
    name="dlq.replay_job.show",
    response_model=ReplayJobView,
    responses=_errors(401, 404, 422, 503),
    summary="One replay job: state, total, published, succeeded, failed, skipped, ETA",
)
async def show_job(service: Service, _actor: Viewer, job_id: JobId) -> ReplayJobView:
    return await service.jobs.get(job_id)


@jobs.post(
    "/{job_id}/pause",
    name="dlq.replay_job.pause",
    response_model=ReplayJobView,
    responses=CONTROL_ERRORS,
    summary="Pause a running job (publishing stops within one batch)",
)
async def pause_job(
    service: Service,
    actor: Operator,
    job_id: JobId,
    body: Annotated[JobPause | None, Body()] = None,
) -> ReplayJobView:
    return await service.jobs.pause(actor, job_id, body.reason if body is not None else None)


@jobs.post(
    "/{job_id}/resume",
    name="dlq.replay_job.resume",
    response_model=ReplayJobView,
    responses=CONTROL_ERRORS,
    summary="Resume a paused job",
)
async def resume_job(service: Service, actor: Operator, job_id: JobId) -> ReplayJobView:
    return await service.jobs.resume(actor, job_id)


@jobs.post(
    "/{job_id}/cancel",
    name="dlq.replay_job.cancel",
    response_model=ReplayJobView,
    responses=CONTROL_ERRORS,
    summary="Cancel a job: published stays published, the rest stays parked",
)
async def cancel_job(service: Service, actor: Operator, job_id: JobId) -> ReplayJobView:
    return await service.jobs.cancel(actor, job_id)
