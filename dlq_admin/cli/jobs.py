"""``payproc dlq jobs``, ``payproc dlq job show|pause|resume|cancel <id>`` and the live
progress bar of ``--follow`` (also ``payproc dlq replay ... --follow``).

``--follow`` polls ``GET /dlq/replay-jobs/{id}`` twice a second and draws published and
settled entries against the total until the job completes, pauses or is cancelled. Exit
status: 0 completed, 1 paused or cancelled (the reason is printed), like every refused call.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from dlq_admin.cli.http import call, emit, err_console, out_console, short_time
from dlq_admin.errors import CliError
from schemas.dlq import EntryStatus

POLL = 0.5
"""Seconds between two polls of ``--follow``."""


def job_line(job: dict[str, Any]) -> str:
    """One line of a job's figures."""
    eta = f", ETA {job['eta_seconds']:.0f}s" if job.get("eta_seconds") is not None else ""
    return (
        f"{job['state']}: {job['published']}/{job['total']} published "
        f"({job['succeeded']} succeeded, {job['failed']} failed, {job.get('following', 0)} "
        f"pending), {job['skipped']} skipped, rate {job['rate']:g}/s{eta}"
    )


def render_job(job: dict[str, Any]) -> None:
    console = out_console()
    console.print(
        f"replay job {job['id']} by {job['created_by']} at {short_time(job['created_at'])}"
    )
    console.print("  " + job_line(job))
    if job.get("skipped_by"):
        reasons = ", ".join(f"{why} {n}" for why, n in sorted(job["skipped_by"].items()))
        console.print(f"  skipped: {reasons}")
    if job.get("canary"):
        canary = job["canary"]
        console.print(
            f"  canary: first {canary['size']}, pause above "
            f"{canary['max_failure_share']:.0%} failed"
        )
    if job.get("paused_reason"):
        console.print(f"  paused: {job['paused_reason']}")


def follow(ns: argparse.Namespace, job_id: str) -> int:
    """Draw the job's progress until it completes (0), pauses or is cancelled (1)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    job = call(ns, "GET", f"/dlq/replay-jobs/{job_id}")
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
    )
    with Progress(*columns, console=out_console(), transient=False) as bar:
        published = bar.add_task("published", total=job["total"] or 1, detail="")
        settled = bar.add_task("settled", total=job["total"] or 1, detail="")
        while True:
            done = job["published"] + job["skipped"]
            bar.update(published, completed=done, detail=job_line(job))
            bar.update(
                settled,
                completed=job["succeeded"] + job["failed"] + job["skipped"],
                detail=f"{job['succeeded']} ok, {job['failed']} failed again",
            )
            if job["state"] != "running":
                break
            time.sleep(POLL)  # polling the API: nothing pushes progress to the CLI
            job = call(ns, "GET", f"/dlq/replay-jobs/{job_id}")
    if job["state"] == "completed":
        out_console().print(f"job {job_id} completed: " + job_line(job))
        return 0
    err_console().print(f"job {job_id} {job['state']}: {job.get('paused_reason') or ''}")
    return 1


def job_request(ns: argparse.Namespace, selection: dict[str, Any]) -> dict[str, Any]:
    """The ``POST /dlq/replay-jobs`` body of ``payproc dlq replay`` with pacing options."""
    body = {k: v for k, v in selection.items() if k != "dry_run"}
    body.setdefault("limit", 100)
    if ns.rate is not None:
        body["rate"] = ns.rate
    if ns.ramp:
        try:
            body["ramp"] = [int(step) for step in ns.ramp.split(",")]
        except ValueError:
            raise CliError("--ramp: comma-separated batch sizes, e.g. 1,2,5,20", 2) from None
    if ns.canary is not None:
        body["canary"] = {"size": ns.canary, "max_failure_share": ns.canary_share}
    return body


def replay_job(ns: argparse.Namespace, selection: dict[str, Any]) -> int:
    """Create the job of a bulk ``payproc dlq replay``; follow it with ``--follow``."""
    job = call(ns, "POST", "/dlq/replay-jobs", body=job_request(ns, selection))

    def render(created: dict[str, Any]) -> None:
        out_console().print(
            f"replay job {created['id']} created: {created['total']} entries frozen; "
            f"follow it with: payproc dlq job show {created['id']} --follow"
        )

    emit(ns, job, render)
    return follow(ns, job["id"]) if ns.follow and not ns.json else 0


def cmd_jobs(ns: argparse.Namespace) -> int:
    from rich.table import Table

    data = call(ns, "GET", "/dlq/replay-jobs", params={"limit": ns.limit})

    def render(page: dict[str, Any]) -> None:
        table = Table(title="replay jobs (newest first)")
        for column in ("id", "state", "total", "published", "ok", "failed", "skipped", "by"):
            table.add_column(column, overflow="fold")
        for j in page["items"]:
            table.add_row(
                j["id"],
                j["state"],
                str(j["total"]),
                str(j["published"]),
                str(j["succeeded"]),
                str(j["failed"]),
                str(j["skipped"]),
                j["created_by"],
            )
        out_console().print(table)

    emit(ns, data, render)
    return 0


def cmd_job(ns: argparse.Namespace) -> int:
    path = f"/dlq/replay-jobs/{ns.id}"
    if ns.action == "show":
        job = call(ns, "GET", path)
    else:
        body = {"reason": ns.why} if ns.action == "pause" and ns.why else None
        job = call(ns, "POST", f"{path}/{ns.action}", body=body)
    emit(ns, job, render_job)
    if ns.follow and not ns.json:
        return follow(ns, ns.id)
    return 0


def add_job_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """``jobs`` and ``job`` under ``payproc dlq``."""
    from dlq_admin.cli.http import run_dlq

    p = sub.add_parser("jobs", parents=[common], help="replay jobs and their progress")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=run_dlq(cmd_jobs))

    p = sub.add_parser("job", parents=[common], help="show, pause, resume or cancel a replay job")
    p.add_argument("action", choices=("show", "pause", "resume", "cancel"))
    p.add_argument("id", help="the job id")
    p.add_argument("--why", help="pause: the reason shown as paused_reason")
    p.add_argument("--follow", action="store_true", help="then draw its progress live")
    p.set_defaults(func=run_dlq(cmd_job))


def add_replay_options(p: argparse.ArgumentParser) -> None:
    """The selection filters and job options of a bulk ``payproc dlq replay``."""
    p.add_argument("--merchant-id", dest="merchant_id", help="entries of this merchant")
    p.add_argument(
        "--status",
        choices=[s.value for s in EntryStatus],
        help="entries in this status (default parked; with ids, reason, group, ...)",
    )
    p.add_argument(
        "--since", help="parked at or after this time (ISO 8601, e.g. 2026-05-01T10:00Z)"
    )
    p.add_argument("--until", help="parked before this time (ISO 8601)")
    p.add_argument("--rate", type=float, help="entries per second (default: the admin's rate)")
    p.add_argument("--ramp", help="sizes of the first batches, one per second, e.g. 1,2,5,20")
    p.add_argument("--canary", type=int, help="publish this many first, pause if they fail")
    p.add_argument(
        "--canary-share",
        dest="canary_share",
        type=float,
        default=0.0,
        help="pause when more than this share of the canary failed again (default 0)",
    )
    p.add_argument("--follow", action="store_true", help="draw the job's progress live")
