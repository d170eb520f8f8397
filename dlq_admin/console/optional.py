"""Capabilities the console shows when this admin has them: replay jobs (``DlqAdmin.jobs``)
and payments whose outcome is ``unknown``. Each is typed here and absent (None) rather than
an error when the admin is built without it."""

from __future__ import annotations

from typing import Any, Protocol, cast

from dlq_admin.audit import Actor
from dlq_admin.service import DlqAdmin
from schemas.dlq import DlqStats
from schemas.outcome import PaymentStatus
from schemas.replay_jobs import ReplayJobCreate, ReplayJobDryRun, ReplayJobPage, ReplayJobView


class Jobs(Protocol):
    """The replay-job engine as the console drives it."""

    async def create(
        self, actor: Actor, request: ReplayJobCreate
    ) -> ReplayJobView | ReplayJobDryRun: ...

    async def list_jobs(self, limit: int = 50, cursor: str | None = None) -> ReplayJobPage: ...

    async def get(self, job_id: str) -> ReplayJobView: ...

    async def pause(self, actor: Actor, job_id: str, reason: str | None = None) -> Any: ...

    async def resume(self, actor: Actor, job_id: str) -> Any: ...

    async def cancel(self, actor: Actor, job_id: str) -> Any: ...


def jobs_of(service: DlqAdmin) -> Jobs | None:
    jobs = getattr(service, "jobs", None)
    return cast(Jobs, jobs) if jobs is not None else None


def unknown_payments(stats: DlqStats) -> int | None:
    """How many payments are ``unknown`` (in doubt): the figure ``DlqAdmin.stats`` reports
    when this payproc has that status (``DlqStats.unknown_payments``); else None, and the
    overview leaves the card out."""
    if "unknown" not in {s.value for s in PaymentStatus}:
        return None
    value = getattr(stats, "unknown_payments", None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None
