"""The job runner of one admin process: find running jobs, take their lease, run them.

Every ``poll`` seconds (or at once when a job is created or resumed) the runner looks for
jobs in state ``running`` that no live admin holds, and takes the lease of each
(``acquire_lease``: a conditional update, so of two admins on one database exactly one gets
it). While a job runs its lease is renewed every third of ``lease``; an admin that cannot
renew (another took the lease over, the database is gone) stops the job at once. An admin
killed mid-job renews nothing: its lease expires and another admin, or the same one
restarted, takes the job over and resumes it (``JobExecution.recover``).

Paused and cancelled jobs publish nothing, but the outcomes of what they published are still
followed here until every payment is final.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from dlq_admin.jobs.execution import JobExecution
from dlq_admin.jobs.ports import JobStore
from schemas.tables import utcnow

log = logging.getLogger("payproc.admin")


def process_owner() -> str:
    """A lease owner name unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class JobRunner:
    def __init__(
        self,
        jobs: JobStore,
        make_execution: Callable[[str], JobExecution],
        *,
        lease: float,
        poll: float,
        owner: str | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.jobs = jobs
        self._make_execution = make_execution
        self.lease = lease
        self.poll = poll
        self.owner = owner or process_owner()
        self._clock = clock
        self._running: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self.ran: set[str] = set()
        """Ids of the jobs this process held the lease of (and ran) at some point."""

    def is_running(self, job_id: str) -> bool:
        """Whether this process is running the job now (it holds the lease)."""
        return job_id in self._running

    def wake(self) -> None:
        """Look for runnable jobs now (a job was created or resumed)."""
        self._wake.set()

    def _until(self) -> datetime:
        return self._clock() + timedelta(seconds=self.lease)

    async def run(self) -> None:
        """Until cancelled: take over runnable jobs and follow the others' outcomes."""
        try:
            while True:
                self._wake.clear()
                try:
                    await self.sweep()
                except Exception:
                    log.exception("replay job sweep failed; trying again")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll)
        finally:
            await self.stop()

    async def sweep(self) -> None:
        for job_id in await self.jobs.running_jobs():
            if job_id in self._running:
                continue
            if await self.jobs.acquire_lease(job_id, self.owner, self._until()):
                self.ran.add(job_id)
                log.info("replay job taken", extra={"job_id": job_id, "owner": self.owner})
                self._running[job_id] = asyncio.create_task(
                    self._hold(job_id), name=f"replay-job-{job_id}"
                )
        for job_id in await self.jobs.following_jobs():
            await self.jobs.follow(job_id)

    async def _hold(self, job_id: str) -> None:
        """Run the job while renewing its lease; stop it when the lease is lost."""
        work = asyncio.create_task(self._make_execution(job_id).run())
        try:
            while not work.done():
                await asyncio.wait({work}, timeout=self.lease / 3)
                if work.done():
                    break
                if not await self._renew(job_id):
                    log.error("lost the lease of replay job %s; stopping it here", job_id)
                    work.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await work
                    return
            try:
                work.result()
            except Exception:
                log.exception("replay job %s stopped by an error; it is retried", job_id)
        except asyncio.CancelledError:
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await work
            raise
        finally:
            self._running.pop(job_id, None)
            with contextlib.suppress(Exception):
                await self.jobs.release_lease(job_id, self.owner)

    async def _renew(self, job_id: str) -> bool:
        try:
            return await self.jobs.renew_lease(job_id, self.owner, self._until())
        except Exception:
            log.exception("could not renew the lease of replay job %s", job_id)
            return False

    async def stop(self) -> None:
        """Stop every job this process runs (their leases are released for another admin)."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
