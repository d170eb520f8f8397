"""Replay jobs at scale: the sustained replay rate of a job over 100,000 parked entries, how
closely a paced job keeps its rate, and the admin's list latency while a job runs.

What one run does: a fresh namespace and database (``payproc db upgrade``), ``entries``
parked entries bulk-inserted into ``dlq_entries`` (``bench.admin.insert_entries``: four
reasons, 50 merchants), the real admin server started (``python -m processor admin
--no-ingest``: its job runner publishes the jobs), driven over HTTP with httpx:

1. a paced job (``POST /dlq/replay-jobs {"reason": "gateway_rejected", "limit": paced,
   "rate": paced_rate}``): its measured rate (first to last publish, from the job view)
   against the rate asked for;
2. a job over every other entry at the admin's highest rate (100,000/s: the mechanism's
   own limit) while ``GET /dlq/messages`` and ``GET /dlq/replay-jobs/{id}`` are timed one
   request at a time: the sustained replay rate and the list p95 while a job runs.

No worker runs: the replayed messages land in the request queue (counted at the end), so the
job publishes everything and then waits for outcomes that never come; the benchmark stops
at "nothing waits any more".
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from bench.admin import _percentiles, admin_under_test, available
from bench.common import BenchError, each_database, log, queue_depth
from bench.results import Latencies, ReplayJobFigures, ReplayJobsFailed


async def _create(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/dlq/replay-jobs", json=body, timeout=600)
    if response.status_code != 201:
        raise BenchError(f"job creation answered {response.status_code}: {response.text[:300]}")
    job: dict[str, Any] = response.json()
    return job


async def _job(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await client.get(f"/dlq/replay-jobs/{job_id}")
    response.raise_for_status()
    job: dict[str, Any] = response.json()
    return job


async def _until_published(client: httpx.AsyncClient, job_id: str, within: float) -> dict[str, Any]:
    deadline = time.perf_counter() + within
    while True:
        job = await _job(client, job_id)
        if job["waiting"] == 0:
            return job
        if time.perf_counter() > deadline:
            raise BenchError(f"job {job_id} still publishing after {within:.0f} s: {job}")
        await asyncio.sleep(0.2)


async def _timed_while_running(
    client: httpx.AsyncClient, job_id: str
) -> tuple[Latencies, Latencies, dict[str, Any]]:
    """Time list and job-view requests, one at a time, until the job published everything."""
    lists: list[float] = []
    views: list[float] = []
    while True:
        started = time.perf_counter()
        (await client.get("/dlq/messages", params={"reason": "poison"})).raise_for_status()
        lists.append(time.perf_counter() - started)
        started = time.perf_counter()
        job = await _job(client, job_id)
        views.append(time.perf_counter() - started)
        if job["waiting"] == 0:
            return _percentiles(lists), _percentiles(views), job
        await asyncio.sleep(0.05)


async def measure(db_kind: str, entries: int, paced: int, paced_rate: float) -> ReplayJobFigures:
    from retry.names import Names

    async with admin_under_test(db_kind, "jobs", entries, request_timeout=60) as admin:
        client = admin.client
        job = await _create(
            client, {"reason": "gateway_rejected", "limit": paced, "rate": paced_rate}
        )
        paced_job = await _until_published(client, job["id"], 10 * paced / paced_rate + 60)
        big = await _create(client, {"status": "parked", "since": "2000-01-01T00:00:00Z"})
        lists, views, done = await _timed_while_running(client, big["id"])
        depth, _ = await queue_depth(admin.connection, Names(admin.namespace).requests)
        sustained = float(done["measured_rate"] or 0.0)
        return ReplayJobFigures(
            db=db_kind,
            entries=entries,
            paced_rate=paced_rate,
            paced_measured=float(paced_job["measured_rate"] or 0.0),
            paced_published=int(paced_job["published"]),
            sustained_rate=sustained,
            sustained_published=int(done["published"]),
            sustained_seconds=round(done["published"] / sustained, 1) if sustained else 0.0,
            list_while_running=lists,
            job_view_while_running=views,
            queue_depth=depth,
        )


async def run(
    entries: int, paced: int, paced_rate: float, dbs: tuple[str, ...] = ("postgres",)
) -> dict[str, ReplayJobFigures | ReplayJobsFailed]:
    """Every database in ``dbs``; a failure is kept as ``ReplayJobsFailed`` (and why)."""
    why = available()
    if why is not None:
        return {db: ReplayJobsFailed(db, why) for db in dbs}

    async def measure_logged(db: str) -> ReplayJobFigures:
        figures = await measure(db, entries, paced, paced_rate)
        log(f"replay jobs ({db}): {figures}")
        return figures

    return await each_database("replay jobs", dbs, measure_logged, ReplayJobsFailed)
