"""Replay jobs as the admin API shows them: what an operator asks for and what a job reports.

A job replays a *frozen* selection of DLQ entries: the entries that matched when the job was
created, never entries parked later. It publishes them paced (``rate``, ``ramp``), interleaved
by merchant, optionally behind a canary that pauses the job when too many of the first
payments fail again, and follows every replayed payment until it is final.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.dlq import EntryStatus
from schemas.outcome import ParkReason

MAX_JOB_ENTRIES = 1_000_000
MAX_JOB_RATE = 100_000.0


class JobState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (JobState.COMPLETED, JobState.CANCELLED)


class Canary(BaseModel):
    """Publish the first ``size`` entries, wait until their payments are final, and pause the
    job when more than ``max_failure_share`` of them failed again."""

    model_config = ConfigDict(extra="forbid")

    size: int = Field(ge=1, le=10_000)
    max_failure_share: float = Field(default=0.0, ge=0.0, le=1.0)


class JobSelection(BaseModel):
    """Which entries a job replays; frozen when the job is created. At least one criterion."""

    model_config = ConfigDict(extra="forbid")

    ids: list[str] | None = Field(default=None, min_length=1, max_length=MAX_JOB_ENTRIES)
    reason: ParkReason | None = None
    group: str | None = Field(default=None, min_length=1, max_length=400)
    merchant_id: str | None = Field(default=None, min_length=1, max_length=200)
    status: EntryStatus = EntryStatus.PARKED
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = Field(default=None, ge=1, le=MAX_JOB_ENTRIES)

    @model_validator(mode="after")
    def _something_selected(self) -> JobSelection:
        criteria = (self.ids, self.reason, self.group, self.merchant_id, self.since, self.until)
        if all(c is None for c in criteria):
            raise ValueError("give at least one of ids, reason, group, merchant_id, since or until")
        if self.since and self.until and self.since >= self.until:
            raise ValueError("since must be before until")
        return self


class ReplaySelection(JobSelection):
    """``POST /dlq/replay``: a job's selection; ``dry_run`` lists what would be replayed (and
    what would be skipped, why) instead of creating the job."""

    dry_run: bool = False


class ReplayJobCreate(JobSelection):
    """``POST /dlq/replay-jobs``: a selection plus pacing and an optional canary."""

    rate: float | None = Field(
        default=None,
        gt=0,
        le=MAX_JOB_RATE,
        description="entries per second (default: the admin's PAYPROC_ADMIN_REPLAY_RATE)",
    )
    ramp: list[Annotated[int, Field(ge=1, le=100_000)]] | None = Field(
        default=None,
        min_length=1,
        max_length=20,
        description="batch sizes of the first batches, e.g. [1, 2, 5, 20]; then the rate alone",
    )
    canary: Canary | None = None
    dry_run: bool = False


class ReplayJobView(BaseModel):
    """``GET /dlq/replay-jobs/{id}``. ``published + skipped + waiting = total`` at every poll;
    ``succeeded + failed + following = published``."""

    id: str
    state: JobState
    total: int = Field(description="entries frozen into the job")
    published: int
    succeeded: int
    failed: int = Field(description="replayed payments that failed again (parked again)")
    skipped: int = Field(description="already final, in doubt, discarded or replayed elsewhere")
    skipped_by: dict[str, int] = Field(
        default_factory=dict,
        description="skipped entries by reason (payment_succeeded, entry_discarded, ...)",
    )
    waiting: int = Field(default=0, description="neither published nor skipped yet")
    following: int = Field(
        default=0, description="published, payment not final yet (followed until it is)"
    )
    rate: float
    measured_rate: float | None = Field(
        default=None, description="entries published per second since the first publish"
    )
    ramp: list[int] | None = None
    canary: Canary | None = None
    paused_reason: str | None = None
    eta_seconds: float | None = None
    selection: JobSelection
    created_by: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None


class ReplayJobDryRun(BaseModel):
    """A dry run: how many entries the job would freeze, and the first of them."""

    dry_run: bool = True
    total: int
    ids: list[str] = Field(description="the first entries, in the order the job would publish")
    by_merchant: dict[str, int]


class ReplayJobPage(BaseModel):
    items: list[ReplayJobView]
    next_cursor: str | None = None


class JobPause(BaseModel):
    """``POST /dlq/replay-jobs/{id}/pause``: an optional reason, shown as ``paused_reason``."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=300)
