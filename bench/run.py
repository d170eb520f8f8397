"""``python -m bench.run``: every scenario in one run, on this machine, then the table.

    python -m bench.run                  # the full benchmark (``make bench``), < 15 minutes
    python -m bench.run --quick          # small N, one repetition: a smoke run (~3 minutes)
    python -m bench.run --only zero      # one scenario (repeatable: --only ceiling --only zero)

Scenarios: ``ceiling`` (bare aio-pika), ``zero`` (payproc 1 and 2 workers, Celery, Dramatiq;
zero-latency gateway; PostgreSQL and SQLite), ``latency`` (50 ms gateway), ``retries``
(30 % transient failures), ``memory`` (50,000 backlog), ``admin`` (DLQ admin API),
``console`` (the operator console's server time per page at 100,000 entries), ``jobs``
(replay jobs: sustained rate at 100,000 entries, paced accuracy, list p95 meanwhile), ``sync``
(synchronous charges through ``bench.sync_rpc``, when that module and its extra are there).
Last, ``rate_limit``: ``PAYPROC_GATEWAY_RATE_LIMIT`` held by 1, 2, 4 workers and under churn.

Runs of different configurations are interleaved (payproc, Dramatiq, Celery, then again), so
drift in background load spreads over all of them rather than landing on one. Progress goes
to stderr; the table goes to stdout and to ``bench/results.md``. Exit status 1 if a run
failed outright or any run showed a double charge; missed targets do not fail the command
(they are the point of the report).

A new scenario is an ``async def scenario_<name>(results)`` here, listed in ``RUNNERS``; its
rows and targets go in ``bench.rows`` and ``bench.targets`` (steps in ``bench/__init__.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench import ceiling, memory, report, retries
from bench.accounting import background_busy, machine_line
from bench.common import (
    LATENCY_SHAPES,
    LOG_DIR,
    connect,
    latency_key,
    log,
    rabbitmq_version,
    workers_phrase,
)
from bench.figures import Figure, Run, repeat
from bench.payproc_runs import PayprocConfig
from bench.payproc_runs import drain as payproc_drain
from bench.peers.runs import PeerConfig
from bench.peers.runs import drain as peer_drain
from bench.results import FULL, QUICK, Plan, Results, SyncFailed

RESULTS_MD = Path(__file__).resolve().parent / "results.md"


async def _interleaved(
    results: Results,
    configs: list[tuple[str, str, Callable[[], Awaitable[Run]]]],
    reps: int,
    *,
    min_reps: int = 1,
    budget: float = 0.0,
) -> None:
    """Run each (key, label, once) up to ``reps`` times, round-robin; a config that failed
    once is not run again. With a ``budget`` (seconds), no round starts after ``min_reps``
    rounds when another round would end past it: on a slow machine the figures rest on
    fewer runs (the table says how many) instead of the benchmark overrunning."""
    for key, label, _ in configs:
        results.add(Figure(key, label))
    started = time.monotonic()
    for rep in range(reps):
        elapsed = time.monotonic() - started
        if budget and rep >= min_reps and elapsed + elapsed / rep > budget:
            log(f"round budget {budget:.0f} s: stopping after {rep} rounds ({elapsed:.0f} s)")
            break
        for key, label, once in configs:
            figure = results.figures[key]
            if figure.error is not None:
                continue

            async def one(_index: int, once: Callable[[], Awaitable[Run]] = once) -> Run:
                return await once()

            single = await repeat(key, f"{label} [{rep + 1}/{reps}]", 1, one)
            figure.runs.extend(single.runs)
            figure.error = single.error


async def scenario_ceiling(results: Results) -> None:
    plan = results.plan
    consume = results.add(
        Figure("ceiling.quorum.consume", "bare aio-pika consume+ack", unit="msgs/s")
    )
    publish = results.add(
        Figure("ceiling.quorum.publish", "bare aio-pika confirmed publish", unit="msgs/s")
    )
    for rep in range(plan.ceiling_reps):
        try:
            measured = await ceiling.once(plan.ceiling_count, "quorum")
        except Exception as exc:
            consume.error = publish.error = f"{type(exc).__name__}: {exc}"
            log(f"ceiling failed: {consume.error}")
            return
        consume.runs.append(measured.consume)
        publish.runs.append(measured.publish)
        log(
            f"ceiling [{rep + 1}/{plan.ceiling_reps}]: publish {measured.publish.rate:,.0f}/s, "
            f"consume+ack {measured.consume.rate:,.0f}/s"
        )
    classic_consume = results.add(
        Figure("ceiling.classic.consume", "bare aio-pika consume+ack", unit="msgs/s")
    )
    classic_publish = results.add(
        Figure("ceiling.classic.publish", "bare aio-pika confirmed publish", unit="msgs/s")
    )
    try:
        measured = await ceiling.once(plan.ceiling_count, "classic")
        classic_consume.runs.append(measured.consume)
        classic_publish.runs.append(measured.publish)
        log(
            f"ceiling classic: publish {measured.publish.rate:,.0f}/s, "
            f"consume+ack {measured.consume.rate:,.0f}/s"
        )
    except Exception as exc:
        classic_consume.error = classic_publish.error = f"{type(exc).__name__}: {exc}"


def _payproc(config: PayprocConfig) -> Callable[[], Awaitable[Run]]:
    return lambda: payproc_drain(config)


def _peer(config: PeerConfig) -> Callable[[], Awaitable[Run]]:
    return lambda: peer_drain(config)


async def scenario_zero(results: Results) -> None:
    plan = results.plan
    n = plan.zero_count
    for db, reps in plan.zero_dbs:
        configs = [
            (f"zero.{db}.payproc1", f"payproc 1 worker ({db})", _payproc(PayprocConfig(1, db, n))),
            (f"zero.{db}.payproc2", f"payproc 2 workers ({db})", _payproc(PayprocConfig(2, db, n))),
            (f"zero.{db}.dramatiq", f"Dramatiq 2x8 ({db})", _peer(PeerConfig("dramatiq", db, n))),
            (f"zero.{db}.celery", f"Celery threads 16 ({db})", _peer(PeerConfig("celery", db, n))),
        ]
        await _interleaved(
            results, configs, reps, min_reps=min(2, reps), budget=plan.zero_round_budget
        )


async def scenario_latency(results: Results) -> None:
    plan = results.plan
    db, lat = plan.latency_db, plan.latency
    pn, qn = plan.latency_payproc_count, plan.latency_peer_count
    configs = [
        (
            f"lat.{db}.{latency_key(workers, prefetch)}",
            f"payproc {workers_phrase(workers)} prefetch {prefetch} ({db})",
            _payproc(PayprocConfig(workers, db, pn, latency=lat, prefetch=prefetch)),
        )
        for workers, prefetch in LATENCY_SHAPES
    ]
    configs += [
        (
            f"lat.{db}.dramatiq",
            f"Dramatiq 2x8 ({db})",
            _peer(PeerConfig("dramatiq", db, qn, latency=lat)),
        ),
        (
            f"lat.{db}.celery",
            f"Celery threads 16 ({db})",
            _peer(PeerConfig("celery", db, qn, latency=lat)),
        ),
    ]
    # Two rounds: a single 8,000-payment run here swung between 506 and 855/s.
    await _interleaved(results, configs, plan.latency_reps)


async def scenario_retries(results: Results) -> None:
    plan = results.plan
    backlog = results.add(Figure("retries.backlog", "payproc 1 worker, 30% transient, backlog"))
    paced = results.add(Figure("retries.paced", "payproc 1 worker, 30% transient, paced"))
    try:
        measured, steady = await retries.run(
            plan.retry_db, plan.retry_count, plan.retry_paced_count, plan.retry_paced_rate
        )
    except Exception as exc:
        backlog.error = paced.error = f"{type(exc).__name__}: {str(exc)[:600]}"
        log(f"retries failed: {backlog.error}")
        return
    backlog.runs.append(measured)
    log(f"retries backlog: goodput {measured.goodput}/s; {measured.delays}")
    if steady is not None:
        paced.runs.append(steady)
        log(f"retries paced: {steady.delays}")


async def scenario_memory(results: Results) -> None:
    plan = results.plan

    async def once(_index: int) -> Run:
        return await memory.run(plan.memory_count)

    results.add(await repeat("memory", "payproc 1 worker, 50,000 backlog (sqlite)", 1, once))


async def scenario_admin(results: Results) -> None:
    from bench import admin

    plan = results.plan
    results.admin = await admin.run(
        plan.admin_entries, plan.admin_requests, plan.admin_replay, plan.admin_dbs
    )
    log(f"admin: {results.admin}")


async def scenario_console(results: Results) -> None:
    """The operator console (``bench.console``): server time per page at many entries."""
    from bench import console

    plan = results.plan
    results.console = await console.run(
        plan.console_entries, plan.console_requests, plan.console_dbs
    )
    log(f"console: {console.table(results.console)}")


async def scenario_jobs(results: Results) -> None:
    """Replay jobs (``bench.replay_jobs``): sustained rate, paced accuracy, list p95."""
    from bench import replay_jobs

    plan = results.plan
    results.replay_jobs = await replay_jobs.run(
        plan.jobs_entries, plan.jobs_paced, plan.jobs_paced_rate, plan.jobs_dbs
    )


async def scenario_sync(results: Results) -> None:
    """The synchronous gRPC charge benchmark (``bench.sync_rpc``), when it is there."""
    try:
        from bench import sync_rpc
    except ImportError as exc:
        results.sync = SyncFailed(f"not available ({exc})")
        return
    try:
        results.sync = await sync_rpc.run(count=results.plan.sync_count)
    except Exception as exc:
        results.sync = SyncFailed(f"{type(exc).__name__}: {str(exc)[:300]}")
    log(f"sync: {results.sync}")


async def scenario_rate_limit(results: Results) -> None:
    """``PAYPROC_GATEWAY_RATE_LIMIT`` accuracy per worker shape (``bench.rate_limit``)."""
    from bench import rate_limit

    plan = results.plan
    for figure in await rate_limit.figures(plan.rate_limit, plan.rate_limit_seconds):
        results.add(figure)


RUNNERS: dict[str, Callable[[Results], Awaitable[None]]] = {  # in the order they run
    "ceiling": scenario_ceiling,
    "zero": scenario_zero,
    "latency": scenario_latency,
    "retries": scenario_retries,
    "memory": scenario_memory,
    "admin": scenario_admin,
    "console": scenario_console,
    "jobs": scenario_jobs,
    "sync": scenario_sync,
    "rate_limit": scenario_rate_limit,
}
SCENARIOS = tuple(RUNNERS)


def _clear_logs() -> None:
    """Child-process logs of the previous run go; this run's stay for inspection."""
    if LOG_DIR.is_dir():
        for old in LOG_DIR.glob("*.log"):
            with contextlib.suppress(OSError):
                old.unlink()


async def main_async(plan: Plan, only: list[str]) -> Results:
    started = time.monotonic()
    _clear_logs()
    results = Results(plan, scenarios=tuple(only) if only else SCENARIOS)
    results.background_busy = await asyncio.to_thread(background_busy, 2.0)
    connection = await connect()
    try:
        rabbit = rabbitmq_version(connection)
    finally:
        await connection.close()
    results.machine = machine_line(rabbit)
    log(
        f"plan {plan.name}: {', '.join(results.scenarios)}; machine {results.machine}; "
        f"background CPU busy {results.background_busy:.0f}%"
    )
    for name in results.scenarios:
        scenario_started = time.monotonic()
        log(f"--- scenario {name}")
        try:
            await RUNNERS[name](results)
        except Exception as exc:  # a broken scenario must not lose the others' figures
            log(f"scenario {name} crashed: {type(exc).__name__}: {exc}")
            results.figures[f"{name}.crash"] = Figure(
                f"{name}.crash", name, error=f"{type(exc).__name__}: {exc}"
            )
        results.scenario_seconds[name] = round(time.monotonic() - scenario_started, 1)
        log(f"--- scenario {name} took {results.scenario_seconds[name]:.0f} s")
    results.total_seconds = round(time.monotonic() - started, 1)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small N, one repetition")
    parser.add_argument(
        "--only",
        action="append",
        choices=SCENARIOS,
        default=[],
        help="run only this scenario (repeatable)",
    )
    parser.add_argument(
        "--output", type=Path, default=RESULTS_MD, help=f"markdown file (default {RESULTS_MD})"
    )
    ns = parser.parse_args(argv)
    plan = QUICK if ns.quick else FULL
    runner: Any = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        runner = uvloop.run
    results = runner(main_async(plan, ns.only))
    text = report.render(results)
    print(text, flush=True)
    ns.output.write_text(text + "\n")
    log(f"written to {ns.output}; logs in {LOG_DIR}; total {results.total_seconds:.0f} s")
    return report.exit_status(results)


if __name__ == "__main__":
    raise SystemExit(main())
