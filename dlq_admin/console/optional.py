"""Capabilities the console shows when this admin has them: replay jobs (``DlqAdmin.jobs``)
and payments whose outcome is ``unknown``. Each is looked up once per call, typed by a
protocol, and absent (None) rather than an error when the admin is built without it."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any, Protocol, cast

from dlq_admin.audit import Actor
from dlq_admin.service import DlqAdmin
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


class _UnknownCounts(Protocol):
    async def unknown_counts(self) -> tuple[int, datetime | None]: ...


async def unknown_payments(service: DlqAdmin) -> int | None:
    """How many payments are ``unknown`` (in doubt), if this payproc has that status and the
    store can count them; else None (the overview leaves the row out)."""
    if "unknown" not in {s.value for s in PaymentStatus}:
        return None
    for holder in (service, service.store, getattr(service, "truth", None)):
        if holder is not None and hasattr(holder, "unknown_counts"):
            with contextlib.suppress(Exception):
                count, _oldest = await cast(_UnknownCounts, holder).unknown_counts()
                return count
    return None
