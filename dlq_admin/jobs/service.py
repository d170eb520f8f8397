"""Replay jobs, the operator's side: create (or preview), list, show, pause, resume, cancel.

Creating a job freezes its selection (``planner``) and stores it with its entries; the
``runner`` of some admin process then publishes it. The control calls only change the job's
state in the database; the runner that holds the job's lease sees the change before its next
batch (so a pause or cancel stops publishing within one batch, and what was published stays
published while the rest stays parked). Every call here that changes something is audited.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from dlq_admin.audit import Actor, AuditLog, Detail, audited
from dlq_admin.errors import Conflict, NotFound
from dlq_admin.jobs.model import Figures, Job, NewJob
from dlq_admin.jobs.planner import by_merchant, freeze, interleave, selection_target
from dlq_admin.jobs.ports import JobStore
from dlq_admin.jobs.views import job_view
from dlq_admin.paging import decode_entry_cursor, encode_entry_cursor
from dlq_admin.ports import EntryReader
from schemas.replay_jobs import (
    JobSelection,
    JobState,
    ReplayJobCreate,
    ReplayJobDryRun,
    ReplayJobPage,
    ReplayJobView,
)
from schemas.tables import utcnow

DRY_RUN_IDS = 100
"""Entry ids a dry run lists (the first the job would publish)."""


def _create_target(request: ReplayJobCreate) -> str:
    return selection_target(request)


def _describe_create(result: ReplayJobView | ReplayJobDryRun) -> tuple[str, Detail]:
    if isinstance(result, ReplayJobDryRun):
        return "dry_run", {"total": result.total, "by_merchant": len(result.by_merchant)}
    return "ok", {"job_id": result.id, "total": result.total, "rate": result.rate}


def _job_target(job_id: str) -> str:
    return f"job:{job_id}"


def _describe_job(result: ReplayJobView) -> tuple[str, Detail]:
    return "ok", {
        "state": result.state.value,
        "published": result.published,
        "total": result.total,
        "paused_reason": result.paused_reason,
    }


class ReplayJobs:
    """``DlqAdmin.jobs``: the replay-job calls of the API, the CLI and the console."""

    def __init__(
        self,
        jobs: JobStore,
        entries: EntryReader,
        audit_log: AuditLog,
        *,
        default_rate: float,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = jobs
        self.entries = entries
        self.audit_log = audit_log
        self.default_rate = default_rate
        self._clock = clock
        self.on_change: Callable[[], None] = lambda: None
        """Called after a job was created or resumed; the runtime wakes its runner."""

    # ---- reads -------------------------------------------------------------------------

    async def get(self, job_id: str) -> ReplayJobView:
        job = await self._job(job_id)
        figures = (await self.store.figures([job.id]))[job.id]
        return job_view(job, figures)

    async def list_jobs(self, limit: int = 50, cursor: str | None = None) -> ReplayJobPage:
        """Jobs newest first, ``limit`` per page."""
        before = None
        if cursor:
            at = decode_entry_cursor(cursor)
            before = (at.at, at.id)
        jobs = await self.store.list_jobs(limit, before)
        figures = await self.store.figures([j.id for j in jobs])
        items = [job_view(j, figures.get(j.id, Figures())) for j in jobs]
        next_cursor = (
            encode_entry_cursor(jobs[-1].created_at, jobs[-1].id)
            if len(jobs) == limit and jobs
            else None
        )
        return ReplayJobPage(items=items, next_cursor=next_cursor)

    # ---- create ------------------------------------------------------------------------

    @audited("dlq.replay_job.create", _create_target, _describe_create)
    async def create(
        self, actor: Actor, request: ReplayJobCreate
    ) -> ReplayJobView | ReplayJobDryRun:
        """Freeze the selection and store the job (``running``); a dry run only shows the
        frozen selection: how many entries, the first ids in publishing order, per
        merchant."""
        selection = JobSelection.model_validate(
            request.model_dump(include=set(JobSelection.model_fields))
        )
        frozen = interleave(await freeze(self.entries, selection))
        if request.dry_run:
            return ReplayJobDryRun(
                total=len(frozen),
                ids=[e.entry_id for e in frozen[:DRY_RUN_IDS]],
                by_merchant=by_merchant(frozen),
            )
        job_id = str(uuid.uuid4())
        await self.store.create_job(
            NewJob(
                id=job_id,
                selection=selection,
                rate=request.rate or self.default_rate,
                ramp=request.ramp,
                canary=request.canary,
                created_by=actor.name or "?",
                entries=frozen,
            )
        )
        self.on_change()
        return await self.get(job_id)

    # ---- control -----------------------------------------------------------------------

    @audited("dlq.replay_job.pause", _job_target, _describe_job)
    async def pause(self, actor: Actor, job_id: str, reason: str | None = None) -> ReplayJobView:
        """Stop publishing (within one batch); what was published stays published."""
        shown = f"paused by {actor.name or '?'}" + (f": {reason}" if reason else "")
        await self._move(job_id, JobState.PAUSED, (JobState.RUNNING,), paused_reason=shown[:500])
        return await self.get(job_id)

    @audited("dlq.replay_job.resume", _job_target, _describe_job)
    async def resume(self, actor: Actor, job_id: str) -> ReplayJobView:
        """Continue a paused job. A job its canary paused continues without a new canary:
        the operator resuming it says the cause is fixed."""
        await self._move(job_id, JobState.RUNNING, (JobState.PAUSED,), canary_done=True)
        self.on_change()
        return await self.get(job_id)

    @audited("dlq.replay_job.cancel", _job_target, _describe_job)
    async def cancel(self, actor: Actor, job_id: str) -> ReplayJobView:
        """End the job for good: published entries stay published, the rest stays parked."""
        await self._move(job_id, JobState.CANCELLED, (JobState.RUNNING, JobState.PAUSED))
        return await self.get(job_id)

    async def _move(
        self,
        job_id: str,
        state: JobState,
        only_from: tuple[JobState, ...],
        *,
        paused_reason: str | None = None,
        canary_done: bool | None = None,
    ) -> None:
        job = await self._job(job_id)
        moved = await self.store.set_state(
            job.id, state, only_from=only_from, paused_reason=paused_reason, canary_done=canary_done
        )
        if not moved:
            current = await self._job(job_id)
            raise Conflict(
                f"job is {current.state.value}; cannot {_verb(state)} it",
                f"job_{current.state.value}",
            )

    async def _job(self, job_id: str) -> Job:
        job = await self.store.get_job(job_id) if "\x00" not in job_id else None
        if job is None:
            raise NotFound(f"no replay job {job_id!r}")
        return job


def _verb(state: JobState) -> str:
    return {
        JobState.PAUSED: "pause",
        JobState.RUNNING: "resume",
        JobState.CANCELLED: "cancel",
    }.get(state, state.value)
