"""Why a target was missed, derived from what the run measured rather than written in
advance: CPU split by owner (workers, broker, database, gateway, other load on the machine),
worker CPU per payment, how busy each worker process was, circuit-breaker trips, retry
lateness.

Each cause takes the target's parameters first and the ``Results`` last, so that a target
in ``bench.targets`` names its cause as ``partial(cause, parameters...)``; it is only called
when the target was missed, so it may assume the target's figures were measured.
"""

from __future__ import annotations

from bench.admin import job_batch
from bench.figures import NO_DELAYS, RateAccuracy, RetryDelays, Run
from bench.formatting import cost, cpu_split, pct, rate, worker_utilisation
from bench.results import (
    CONSOLE_TARGET_P95_MS,
    AdminFigures,
    ConsoleFigures,
    ReplayJobFigures,
    Results,
)


def one_worker(db: str, results: Results) -> str:
    """1 worker below its share of the ceiling: its CPU per payment, or its waiting."""
    one = results.measured(f"zero.{db}.payproc1")
    ceiling = results.measured("ceiling.quorum.consume")
    if one is None or ceiling is None or (run := one.median_run()) is None:
        return ""
    used = worker_utilisation(run, 1)
    needed = 1000 / (0.15 * ceiling.rate)
    in_flight_ms = 1000 * 100 / one.rate
    text = (
        f"1 worker used {used:.0f}% of a core ({cpu_split(run)}) at "
        f"{run.cpu_ms('workers'):.2f} ms of worker CPU per payment; 15% of the ceiling needs "
        f"<= {needed:.2f} ms"
    )
    if used < 85:
        text += (
            f", and the worker is not even CPU-bound: with 100 in flight each payment spends "
            f"~{in_flight_ms:.0f} ms in the worker, waiting in turn for its claim commit, the "
            "gateway, its outcome commit and the confirm of its outcome event before the ack"
        )
    return text


def vs_peer(db: str, peer_name: str, factor: float, results: Results) -> str:
    """payproc 2 workers below ``factor`` x a peer: the machine's limit and both CPU costs."""
    two = results.measured(f"zero.{db}.payproc2")
    peer = results.measured(f"zero.{db}.{peer_name}")
    if two is None or peer is None:
        return ""
    run, prun = two.median_run(), peer.median_run()
    if run is None or prun is None:
        return ""
    busy = run.cpu.get("busy", 0.0)
    text = (
        f"payproc {cost(run)} vs {peer_name.title()} {prun.system_cpu_ms():.2f} ms "
        f"(workers {prun.cpu_ms('workers'):.2f}, broker {prun.cpu_ms('broker'):.2f})"
    )
    if busy >= 80:
        return (
            f"the 2 cores are the limit ({cpu_split(run)}); {text}: {factor:g}x "
            f"{peer_name.title()} on this machine needs about "
            f"{prun.system_cpu_ms() / factor:.2f} ms per payment"
        )
    return (
        f"the machine still had idle CPU ({cpu_split(run)}): each payproc worker is "
        f"latency-bound (see the 1-worker row); {text}"
    )


def five_x(db: str, key: str, workers: int, results: Results) -> str:
    """A latency shape below 5x Dramatiq: whether even a 0 ms gateway would get there."""
    figure = results.measured(f"lat.{db}.{key}")
    dramatiq = results.measured(f"lat.{db}.dramatiq")
    zero_same = results.measured(f"zero.{db}.payproc{workers}")
    if figure is None or dramatiq is None:
        return ""
    needed = 5 * dramatiq.rate
    text = f"5x Dramatiq is {rate(needed)}"
    if zero_same is not None and needed > zero_same.rate:
        text += (
            f", more than as many payproc workers do even with a 0 ms gateway "
            f"({rate(zero_same.rate)}): the latency is hidden, the workers' own cost is the limit"
        )
    else:
        text += ": the workers are held below their bound (next row)"
    return f"{text}; {cpu_split(figure.median_run())}"


def latency_bound(
    db: str, key: str, workers: int, prefetch: int, latency: float, results: Results
) -> str:
    """A latency shape below 85% of its bound: where each payment's time in flight went."""
    figure = results.measured(f"lat.{db}.{key}")
    if figure is None:
        return ""
    zero_same = results.measured(f"zero.{db}.payproc{workers}")
    zero_run = zero_same.median_run() if zero_same is not None else None
    run = figure.median_run()
    used = worker_utilisation(run, workers) if run is not None else 0.0
    in_flight_ms = 1000 * workers * prefetch / figure.rate
    own_ms = in_flight_ms - 1000 * latency
    return (
        f"each worker used {used:.0f}% of a core ({cpu_split(run)}) and "
        f"{run.cpu_ms('workers') if run else 0:.2f} ms of CPU per payment vs "
        f"{zero_run.cpu_ms('workers') if zero_run else 0:.2f} ms at 0 ms; each payment "
        f"spent ~{in_flight_ms:.0f} ms in flight, {1000 * latency:.0f} ms of it at the "
        f"gateway and ~{own_ms:.0f} ms in payproc's own commits, confirms and "
        "event-loop queueing"
    )


def goodput(db: str, results: Results) -> str:
    """Why goodput under failures falls short: what a failed attempt costs the worker, how
    much of the drain is the retry ladder's tail, and the circuit breaker's pauses."""
    backlog = results.measured("retries.backlog")
    zero = results.measured(f"zero.{db}.payproc1")
    run = backlog.median_run() if backlog is not None else None
    if run is None or zero is None:
        return ""
    steady = float(run.steady_rate)
    calls = run.checks.gateway_requests
    failures = calls - run.count
    zero_run = zero.median_run()
    text = f"steady-state goodput is {rate(steady)} ({pct(steady, zero.rate)})"
    if failures > 0 and zero_run is not None:
        success_ms = zero_run.cpu_ms("workers")
        worker_ms = 1000 * run.cpu.get("workers_cpu_s", 0.0)
        failed_ms = (worker_ms - run.count * success_ms) / failures
        text += (
            f"; {calls:,} gateway calls for {run.count:,} payments, and a failed attempt cost "
            f"the worker ~{failed_ms:.2f} ms of CPU against {success_ms:.2f} ms for a success "
            "(claim, charge, commit, a confirmed retry copy and its event, and the consumed "
            "copy's x-death headers)"
        )
    if steady > 0:
        at_steady = run.count / steady
        text += (
            f"; the drain took {run.seconds:.1f} s where {at_steady:.1f} s would do at the "
            f"steady rate: the last {run.seconds - at_steady:.1f} s are the retry ladder's tail "
            "(payments that failed several times in a row wait out 0.5 + 1 + 2 + 2 ... s, and "
            "retries rejoin the back of the request queue, late p50 "
            f"{(run.delays or NO_DELAYS).late_p50_s} s), when the worker is mostly idle"
        )
    opens = run.circuit_opens
    if opens:
        text += (
            f"; the circuit breaker opened {opens}x on random 30% failures and paused "
            "consumption each time"
        )
    return text


def _delays(key: str, results: Results) -> RetryDelays:
    figure = results.measured(key)
    run = figure.median_run() if figure is not None else None
    return (run.delays if run is not None else None) or NO_DELAYS


def backlog_delays(results: Results) -> str:
    """Retries late under a backlog: they queue behind it."""
    delays = _delays("retries.backlog", results)
    return (
        f"late p50 {delays.late_p50_s} s, p95 {delays.late_p95_s} s: a "
        "retry dead-letters back to the *end* of the request queue, so under a "
        "backlog it also waits for every message ahead of it"
    )


def paced_delays(results: Results) -> str:
    """Retries late below capacity: how late."""
    delays = _delays("retries.paced", results)
    return f"late p95 {delays.late_p95_s} s, max {delays.late_max_s} s"


def _rounds(batch: int | None) -> str:
    """How a replay job publishes, and what limits it."""
    rounds = f"rounds of {batch} entries" if batch else "rounds of entries"
    return (
        f"the replay job publishes in {rounds}, one round at a time (the replay rules and "
        "outcome truth checked per round, one claim transaction, confirms pipelined, one "
        "settling transaction; the payment.replayed events go out while the next round "
        "claims): the admin process's CPU is the limit, two confirmed publishes per entry "
        "(the request and its event) and several round trips to the database per round; on "
        "a busy machine it shares the 2 cores with the broker and the database"
    )


def replay(db: str, results: Results) -> str:
    """Bulk replay (a replay job) below its rate: what each round costs and where the CPU
    goes."""
    m = results.admin.by_db.get(db) if results.admin is not None else None
    if not isinstance(m, AdminFigures):
        return ""
    text = _rounds(m.job_batch)
    if m.replay_rate:
        text += f" ({1000 / m.replay_rate:.2f} ms per entry here)"
    return text + "; a job's default rate (PAYPROC_ADMIN_REPLAY_RATE) is 500/s"


def replay_job(db: str, results: Results) -> str:
    """An unpaced replay job over many entries below the target: the same limit, per entry."""
    m = (results.replay_jobs or {}).get(db)
    if not isinstance(m, ReplayJobFigures) or not m.sustained_rate:
        return ""
    return (
        f"{_rounds(job_batch(100_000.0))} ({1000 / m.sustained_rate:.2f} ms per entry over "
        f"{m.sustained_published:,} entries; the benchmark's own list and job-view requests "
        "are served by the same process meanwhile)"
    )


def console(db: str, results: Results) -> str:
    """Console pages over the target: which, by how much, and whether every request of the
    page is slow (its median too: the page's own work at this many entries) or only a tail
    (a few slow responses on a busy machine)."""
    m = results.console.by_db.get(db) if results.console is not None else None
    if not isinstance(m, ConsoleFigures):
        return ""
    bound = CONSOLE_TARGET_P95_MS
    slow = sorted(
        (p for p in m.pages if p.latencies.p95_ms >= bound),
        key=lambda p: p.latencies.p95_ms,
        reverse=True,
    )
    text = f"{len(slow)} of {len(m.pages)} pages at or over {bound:.0f} ms p95 at {m.entries:,} "
    text += "entries: " + ", ".join(
        f"{p.page} p95 {p.latencies.p95_ms} ms (p50 {p.latencies.p50_ms}, max {p.latencies.max_ms})"
        for p in slow
    )
    steady = [p.page for p in slow if p.latencies.p50_ms >= bound / 2]
    if steady:
        return text + (
            f"; the median of {', '.join(steady)} is slow too: that page's own queries and "
            f"rendering at {m.entries:,} entries, not a passing stall"
        )
    return text + (
        "; their medians are well under the bound, so a tail of slow responses: the machine "
        f"was {results.background_busy:.0f}% busy with other load before the run"
    )


def _limiter_run(key: str, results: Results) -> tuple[Run, RateAccuracy] | None:
    figure = results.measured(key)
    run = figure.median_run() if figure is not None else None
    if run is None or run.limiter is None:
        return None
    return run, run.limiter


def rate_accuracy(key: str, results: Results) -> str:
    """The gateway's rate off the limit: which way, and what else the run measured."""
    found = _limiter_run(key, results)
    if found is None:
        return ""
    run, limiter = found
    if limiter.rate < limiter.limit:
        return (
            f"{limiter.rate:.1f}/s over {run.seconds:.1f} s: the workers sent less than their "
            f"shares add up to ({limiter.gateway_429} answers were 429); the machine was "
            f"{results.background_busy:.0f}% busy with other load before the run"
        )
    return (
        f"{limiter.rate:.1f}/s over {run.seconds:.1f} s: the workers' shares together "
        f"exceeded the limit, and the gateway's own limiter answered {limiter.gateway_429} "
        "requests with 429"
    )


def rate_refused(key: str, results: Results) -> str:
    """Too many 429s from the gateway's own limiter: the bursts above the limit."""
    found = _limiter_run(key, results)
    if found is None:
        return ""
    run, limiter = found
    return (
        f"{limiter.gateway_429} of {run.checks.gateway_requests:,} requests refused at "
        f"{limiter.rate:.1f}/s on average: the workers' combined requests came in bursts "
        "above the gateway's bucket"
    )
