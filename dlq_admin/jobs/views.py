"""A stored job and its figures as the API shows them (``ReplayJobView``)."""

from __future__ import annotations

from dlq_admin.jobs.model import Figures, Job
from schemas.replay_jobs import JobState, ReplayJobView


def measured_rate(job: Job, figures: Figures) -> float | None:
    """Entries published per second, from the first publish to the latest one."""
    if job.started_at is None or job.last_published_at is None or figures.all_published < 2:
        return None
    elapsed = (job.last_published_at - job.started_at).total_seconds()
    return round(figures.all_published / elapsed, 2) if elapsed > 0 else None


def job_view(job: Job, figures: Figures) -> ReplayJobView:
    """The view of ``job``: ``published + skipped + waiting == total`` and
    ``succeeded + failed + following == published``, from one read of its entries."""
    eta: float | None = None
    if job.state is JobState.RUNNING:
        eta = round(figures.unpublished / job.rate, 1) if job.rate > 0 else None
    return ReplayJobView(
        id=job.id,
        state=job.state,
        total=figures.total,
        published=figures.all_published,
        succeeded=figures.succeeded,
        failed=figures.failed,
        skipped=figures.skipped,
        skipped_by=figures.skipped_by,
        waiting=figures.unpublished,
        following=figures.published,
        rate=job.rate,
        measured_rate=measured_rate(job, figures),
        ramp=job.ramp,
        canary=job.canary,
        paused_reason=job.paused_reason,
        eta_seconds=eta,
        selection=job.selection,
        created_by=job.created_by,
        created_at=job.created_at,
        updated_at=job.updated_at,
        finished_at=job.finished_at,
    )
