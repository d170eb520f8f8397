"""The typed rows of replay jobs: a job as stored, one frozen entry, a job's figures.

The store converts database rows into these; the planner, runner and service read
attributes, never string keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from schemas.replay_jobs import Canary, JobSelection, JobState


class EntryState(StrEnum):
    """Where one frozen entry of a job is.

    ``waiting`` -> ``claimed`` (the DLQ entry is ``replaying`` for this job) -> ``published``
    (the broker confirmed) -> ``succeeded`` or ``failed`` (the payment's outcome, followed);
    or ``waiting`` -> ``skipped`` (already final, in doubt, discarded, replayed elsewhere).
    """

    WAITING = "waiting"
    CLAIMED = "claimed"
    PUBLISHED = "published"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Figures:
    """A job's progress, read in one query: every frozen entry is counted exactly once."""

    total: int = 0
    waiting: int = 0
    claimed: int = 0
    published: int = 0
    """Confirmed and still followed (neither succeeded nor failed yet)."""
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    skipped_by: dict[str, int] = field(default_factory=dict)
    """Skipped entries by reason (``payment_succeeded``, ``entry_discarded``, ...)."""

    @classmethod
    def from_counts(
        cls, total: int, counts: dict[str, int], skipped_by: dict[str, int] | None = None
    ) -> Figures:
        return cls(
            total=total,
            skipped_by=skipped_by or {},
            waiting=counts.get(EntryState.WAITING, 0),
            claimed=counts.get(EntryState.CLAIMED, 0),
            published=counts.get(EntryState.PUBLISHED, 0),
            succeeded=counts.get(EntryState.SUCCEEDED, 0),
            failed=counts.get(EntryState.FAILED, 0),
            skipped=counts.get(EntryState.SKIPPED, 0),
        )

    @property
    def all_published(self) -> int:
        """Published by the job, whatever became of the payment since."""
        return self.published + self.succeeded + self.failed

    @property
    def unpublished(self) -> int:
        """Neither published nor skipped yet (waiting, or claimed and being published)."""
        return self.waiting + self.claimed


@dataclass(frozen=True, slots=True)
class Job:
    """One replay job as stored."""

    id: str
    state: JobState
    selection: JobSelection
    rate: float
    ramp: list[int] | None
    canary: Canary | None
    canary_done: bool
    paused_reason: str | None
    self_paused: bool
    total: int
    created_by: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    last_published_at: datetime | None
    finished_at: datetime | None
    lease_owner: str | None
    lease_expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job to store, with its frozen entries in publishing order."""

    id: str
    selection: JobSelection
    rate: float
    ramp: list[int] | None
    canary: Canary | None
    created_by: str
    entries: list[FrozenEntry] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class FrozenEntry:
    """One entry of a job's frozen selection."""

    entry_id: str
    payment_id: str | None
    merchant_id: str | None


@dataclass(frozen=True, slots=True)
class JobEntry:
    """One frozen entry with its position and progress."""

    position: int
    entry_id: str
    payment_id: str | None
    merchant_id: str | None
    state: EntryState
