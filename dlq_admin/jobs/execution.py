"""Running one replay job, by the admin process that holds its lease.

Each round re-reads the job (a pause or cancel stops it before the next batch), follows the
outcomes of what it published, and publishes the next batch of waiting entries:

1. every entry goes through the rules of every replay (``replay_rules.check_replayable`` and
   ``payment_refusal``) and of outcome truth (an ``unknown`` payment is never replayed; past
   the gateway's idempotency window the charge is looked up first, ``replay_truth``); what
   they refuse is ``skipped`` with why;
2. the rest is claimed in one transaction (DLQ entries ``parked -> replaying``, job entries
   ``waiting -> claimed``): an entry another replay holds is skipped;
3. ``Replay.publish_batch`` publishes the claimed entries paced by the job's own token
   bucket (``rate``; ``ramp`` caps the first batches, one per second), then the job entries
   become ``published`` (confirmed) or ``waiting`` again (refused by the broker).

A canary publishes the job's first ``size`` entries, waits until their payments are final
(or ``canary_timeout``; pending then counts as failed) and pauses the job, stating why, when
more than ``max_failure_share`` of them failed again; nothing else is published until an
operator resumes it. The job completes when nothing waits and every published payment is
final.

After a crash, the job's ``claimed`` entries are settled first (``recover``): those whose
publish evidently went out (the DLQ entry says ``replayed``, the payment is final, a gateway
attempt or a new DLQ entry names the entry in ``replay_of``) count as published; the others
are published once more (the worker de-duplicates a repeated message by payment id).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from dlq_admin.audit import Actor, AuditLog
from dlq_admin.auth import Principal
from dlq_admin.errors import Conflict
from dlq_admin.jobs.model import EntryState, Figures, Job, JobEntry
from dlq_admin.jobs.ports import JobStore
from dlq_admin.paging import TokenBucket
from dlq_admin.ports import ReplayStore
from dlq_admin.replay import Replay
from dlq_admin.replay_rules import check_replayable, payment_refusal
from dlq_admin.replay_truth import BatchSkipCheck
from dlq_admin.rows import ClaimedEntry, Entry
from schemas.dlq import EntryStatus, Role
from schemas.outcome import PaymentStatus
from schemas.replay_jobs import JobState

log = logging.getLogger("payproc.admin")

MAX_CHUNK = 500
"""Most entries one batch claims and publishes."""
RECOVER_LIMIT = 10_000
FOLLOW_WHILE_PUBLISHING = 5.0
"""Seconds between two follows of outcomes while the job is still publishing."""

SKIP_NAMES = {
    "already_replayed": "replayed_elsewhere",
    "replay_in_progress": "claimed_elsewhere",
}
"""``check_replayable`` refusal codes, renamed for a job's ``skipped`` reasons."""


def skip_reason(
    entry: Entry | None, payment_status: str | None, stale_before: datetime
) -> str | None:
    """Why a job must not publish this entry now (the rules of every replay), else None."""
    if entry is None:
        return "not_found"
    try:
        check_replayable(entry, stale_before)
    except Conflict as refused:
        return SKIP_NAMES.get(refused.code, refused.code)
    if not entry.payment_id:
        return "no_payment_id"  # its outcome could not be followed: replay it alone
    if payment_status == PaymentStatus.UNKNOWN.value:
        return "payment_unknown"  # the gateway may have charged it: a lookup settles it first
    return payment_refusal(payment_status)


def job_actor(job_id: str) -> Actor:
    """Who replays a job's entries: ``replayed_by`` of each entry names the job."""
    return Actor(Principal(f"job:{job_id}", Role.OPERATOR))


@dataclass(frozen=True, slots=True)
class Pacing:
    """How fast a job publishes: ``chunk`` entries per batch, at most ``rate`` per second,
    the first batches capped by the ramp (one ramp step per second)."""

    rate: float
    ramp: list[int] | None

    @property
    def chunk(self) -> int:
        return max(1, min(MAX_CHUNK, int(self.rate / 2)))

    def batch(self, step: int) -> int:
        if self.ramp and step < len(self.ramp):
            return max(1, min(self.ramp[step], self.chunk))
        return self.chunk


JobObserve = Callable[[str, str], None]
"""Told ``(event, job_id)``: ``self_paused``, ``completed``."""


class JobExecution:
    """One job, run until it pauses, completes, is cancelled or the lease is lost."""

    def __init__(
        self,
        job_id: str,
        jobs: JobStore,
        entries: ReplayStore,
        make_replay: Callable[[TokenBucket], Replay],
        *,
        poll: float,
        canary_timeout: float,
        stale_before: Callable[[], datetime],
        observe: JobObserve,
        audit_log: AuditLog | None = None,
        truth_skips: BatchSkipCheck | None = None,
    ) -> None:
        self.job_id = job_id
        self.jobs = jobs
        self.entries = entries
        self._make_replay = make_replay
        self.poll = poll
        self.canary_timeout = canary_timeout
        self._stale_before = stale_before
        self._observe = observe
        self.audit_log = audit_log
        """Where the job's own decisions (pausing itself) are audited."""
        self.truth_skips = truth_skips
        """Outcome truth past the idempotency window: entries to skip, with why."""
        self.actor = job_actor(job_id)
        self._replay: Replay | None = None
        self._step = 0
        self._canary_waiting_since: float | None = None
        self._started = False
        self._followed_at = -float("inf")
        self._publishing = False

    def _replayer(self, job: Job) -> Replay:
        if self._replay is None:
            self._replay = self._make_replay(TokenBucket(job.rate, max(1.0, job.rate / 4)))
        return self._replay

    async def run(self) -> None:
        """Recover, then run rounds until the job stops; the ``payment.replayed`` events of
        the last batch are awaited (given up when the job is cancelled)."""
        try:
            await self._rounds()
        except asyncio.CancelledError:
            if self._replay is not None:
                self._replay.stop_announcing()
            raise
        finally:
            if self._replay is not None:
                await self._replay.announced()

    async def _rounds(self) -> None:
        await self.recover()
        while True:
            job = await self.jobs.get_job(self.job_id)
            if job is None or job.state is not JobState.RUNNING:
                return
            await self._follow(job.id)
            if job.canary is not None and not job.canary_done:
                if not await self._canary_round(job):
                    return
                continue
            self._publishing = await self._publish_round(job, self._pacing(job).batch(self._step))
            if self._publishing:
                continue
            figures = (await self.jobs.figures([job.id]))[job.id]
            if figures.unpublished == 0 and figures.published == 0:
                if await self.jobs.set_state(job.id, JobState.COMPLETED, only_from=[job.state]):
                    log.info("replay job completed", extra=_extra(job.id, figures))
                    self._observe("completed", job.id)
                return
            await asyncio.sleep(self.poll)  # following outcomes: nothing announces them

    async def _follow(self, job_id: str) -> None:
        """Follow outcomes at most once per ``poll``, or per ``FOLLOW_WHILE_PUBLISHING`` while
        the job publishes (its cost grows with what is followed; publishing comes first)."""
        now = time.monotonic()
        every = max(self.poll, FOLLOW_WHILE_PUBLISHING) if self._publishing else self.poll
        if now - self._followed_at >= every:
            self._followed_at = now
            await self.jobs.follow(job_id)

    def _pacing(self, job: Job) -> Pacing:
        return Pacing(job.rate, job.ramp)

    async def _canary_round(self, job: Job) -> bool:
        """Publish the canary, then wait for its outcomes; False once the job paused."""
        assert job.canary is not None
        figures = await self.jobs.canary_figures(job.id, job.canary.size)
        if figures.unpublished > 0:
            size = min(self._pacing(job).batch(self._step), figures.unpublished)
            await self._publish_round(job, size)
            return True
        self._publishing = False
        now = time.monotonic()
        if self._canary_waiting_since is None:
            self._canary_waiting_since = now
        timed_out = now - self._canary_waiting_since >= self.canary_timeout
        if figures.published > 0 and not timed_out:
            await asyncio.sleep(self.poll)
            return True
        failed = figures.failed + figures.published
        base = figures.all_published
        if base and failed / base > job.canary.max_failure_share:
            reason = (
                f"canary: {failed} of {base} replayed payments failed again "
                f"({figures.published} still not final), more than "
                f"{job.canary.max_failure_share:.0%} allowed; fix the cause, then resume"
            )
            if await self.jobs.set_state(
                job.id,
                JobState.PAUSED,
                only_from=[JobState.RUNNING],
                paused_reason=reason[:500],
                self_paused=True,
            ):
                log.warning("replay job paused itself", extra={"job_id": job.id, "why": reason})
                self._observe("self_paused", job.id)
                if self.audit_log is not None:
                    await self.audit_log.record(
                        self.actor,
                        "dlq.replay_job.self_pause",
                        f"job:{job.id}",
                        "paused",
                        {"reason": reason, "failed": failed, "published": base},
                    )
            return False
        await self.jobs.mark_canary_done(job.id)
        log.info("replay job canary passed", extra=_extra(job.id, figures))
        return True

    async def _publish_round(self, job: Job, size: int) -> bool:
        """Skip, claim and publish the next ``size`` waiting entries; False if none wait."""
        waiting = await self.jobs.entries_in_state(job.id, EntryState.WAITING, size)
        if not waiting:
            return False
        started = time.monotonic()
        position = {w.entry_id: w.position for w in waiting}
        claimed = await self._claim(job, waiting)
        if claimed:
            if not self._started:
                await self.jobs.mark_started(job.id)
                self._started = True
            published = await self._replayer(job).publish_batch(self.actor, claimed)
            refused = [position[f.id] for f in published.failed]
            await self.jobs.settle_entries(
                job.id, [position[i] for i in published.replayed], refused
            )
            if refused:
                log.warning(
                    "broker refused %d replays of job %s; they wait for the next round",
                    len(refused),
                    job.id,
                )
                await asyncio.sleep(self.poll)
        if job.ramp and self._step < len(job.ramp):
            # One ramp step per second: the ramp's batch sizes are its first rates.
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
        self._step += 1
        return True

    async def _claim(self, job: Job, waiting: list[JobEntry]) -> list[ClaimedEntry]:
        """Apply the replay rules, skip what they refuse, claim the rest (publishing order)."""
        found = await self.entries.get_entries([w.entry_id for w in waiting])
        payment_ids = [e.payment_id for e in found.values() if e.payment_id]
        statuses = await self.entries.payment_statuses(payment_ids) if payment_ids else {}
        stale_before = self._stale_before()
        notes: dict[int, str] = {}
        ready: list[JobEntry] = []
        for item in waiting:
            entry = found.get(item.entry_id)
            status = statuses.get(entry.payment_id) if entry and entry.payment_id else None
            why = skip_reason(entry, status, stale_before)
            if why is None:
                ready.append(item)
            else:
                notes[item.position] = why
        if ready and self.truth_skips is not None:
            pairs = [
                (item.entry_id, payment_id)
                for item in ready
                if (payment_id := found[item.entry_id].payment_id)
            ]
            truth = await self.truth_skips(pairs, False)
            for item in ready:
                if item.entry_id in truth:
                    notes[item.position] = truth[item.entry_id]
            ready = [item for item in ready if item.entry_id not in truth]
        claimed = await self.jobs.claim_entries(job.id, ready, stale_before) if ready else {}
        for item in ready:
            if item.entry_id not in claimed:
                notes[item.position] = "claimed_elsewhere"
        if notes:
            await self.jobs.skip_entries(job.id, notes)
        return [claimed[i.entry_id] for i in ready if i.entry_id in claimed]

    async def recover(self) -> None:
        """Settle the entries a previous holder of the lease claimed and may have published."""
        stuck = await self.jobs.entries_in_state(self.job_id, EntryState.CLAIMED, RECOVER_LIMIT)
        if not stuck:
            return
        statuses = await self.jobs.entry_statuses([s.entry_id for s in stuck])
        position = {s.entry_id: s.position for s in stuck}
        published: list[int] = []
        back: list[int] = []
        again: list[ClaimedEntry] = []
        for item in stuck:
            status = statuses.get(item.entry_id)
            if status == EntryStatus.REPLAYED.value:
                published.append(item.position)
            elif status != EntryStatus.REPLAYING.value:
                back.append(item.position)
            elif await self._went_out(item):
                await self.entries.finish_many_replays([item.entry_id], [], self.actor.name or "?")
                published.append(item.position)
            else:
                full = await self.entries.get_entry(item.entry_id)
                if full is not None:
                    again.append(full.claimed())
        await self.jobs.settle_entries(self.job_id, published, back)
        log.warning(
            "replay job %s resumed: %d claimed entries had been published, %d are published "
            "again, %d were not published",
            self.job_id,
            len(published),
            len(again),
            len(back),
        )
        if again:
            job = await self.jobs.get_job(self.job_id)
            if job is None:
                return
            done = await self._replayer(job).publish_batch(self.actor, again)
            await self.jobs.settle_entries(
                self.job_id,
                [position[i] for i in done.replayed],
                [position[f.id] for f in done.failed],
            )

    async def _went_out(self, item: JobEntry) -> bool:
        """Evidence that the publish of a claimed entry reached a worker."""
        if not item.payment_id:
            return False
        payment = await self.entries.payment(item.payment_id)
        if payment is not None and payment_refusal(payment.status) is not None:
            return True
        attempts = await self.entries.attempts(item.payment_id)
        return any(a.replay_of == item.entry_id for a in attempts)


def _extra(job_id: str, figures: Figures) -> dict[str, object]:
    return {
        "job_id": job_id,
        "total": figures.total,
        "published": figures.all_published,
        "succeeded": figures.succeeded,
        "failed": figures.failed,
        "skipped": figures.skipped,
    }
