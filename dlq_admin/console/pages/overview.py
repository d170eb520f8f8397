"""Overview: what is parked and why, how old the oldest is, what waits in ``N.dlq`` and which
replay jobs run; ``/ui/overview.json`` is the fragment the page's script polls to refresh the
counts without a reload. The failure groups (a scan of every parked entry) have their own
page, so the overview stays cheap enough to poll."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from dlq_admin.console.deps import ConsoleDep, ConsoleRoute, Me, render
from dlq_admin.console.optional import jobs_of, unknown_payments
from dlq_admin.console.render import ago
from dlq_admin.service import DlqAdmin
from schemas.dlq import DlqStats
from schemas.outcome import ParkReason
from schemas.replay_jobs import JobState, ReplayJobView

router = APIRouter(prefix="/ui", route_class=ConsoleRoute, include_in_schema=False)


@dataclass(frozen=True, slots=True)
class Overview:
    stats: DlqStats
    unknown: int | None
    jobs: list[ReplayJobView] | None

    def counts(self) -> dict[str, str]:
        """Every refreshable figure, by the ``data-count`` name the page shows it under."""
        s = self.stats
        out = {
            "parked": str(s.parked),
            "total": str(s.total),
            "oldest": ago(s.oldest_parked_age_seconds),
            "waiting": "?" if s.queue.waiting is None else str(s.queue.waiting),
            "unknown": "-" if self.unknown is None else str(self.unknown),
            "jobs": "-" if self.jobs is None else str(len(self.jobs)),
        }
        if s.retention is not None:
            out["purge"] = str(s.retention.purge_next_24h)
        for reason in ParkReason:
            out[f"reason-{reason.value}"] = str(s.parked_by_reason.get(reason.value, 0))
        for status, count in s.by_status.items():
            out[f"status-{status}"] = str(count)
        return out


async def _active_jobs(service: DlqAdmin) -> list[ReplayJobView] | None:
    jobs = jobs_of(service)
    if jobs is None:
        return None
    page = await jobs.list_jobs(limit=50)
    return [j for j in page.items if j.state in (JobState.RUNNING, JobState.PAUSED)]


async def overview(service: DlqAdmin) -> Overview:
    """The figures of the overview, read concurrently (each on its own connection)."""
    stats, running = await asyncio.gather(service.stats(), _active_jobs(service))
    return Overview(stats, unknown_payments(stats), running)


@router.get("/", name="console.overview")
async def overview_page(request: Request, console: ConsoleDep, _me: Me) -> Response:
    found = await overview(console.service)
    reasons = [r.value for r in ParkReason]
    reasons += sorted(k for k in found.stats.parked_by_reason if k not in reasons)
    return render(
        request,
        "overview.html",
        view=found,
        counts=found.counts(),
        reasons=reasons,
        nav="overview",
    )


@router.get("/overview.json", name="console.overview_counts")
async def overview_counts(console: ConsoleDep, _me: Me) -> Response:
    found = await overview(console.service)
    return JSONResponse(asdict_counts(found))


def asdict_counts(found: Overview) -> dict[str, dict[str, str]]:
    return {"counts": found.counts()}
