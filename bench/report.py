"""The report: one markdown document (printed and written to ``bench/results.md``) with the
machine it ran on, every figure with its spread and checks, the ratios the issue asks for,
and a verdict per target (met, or the gap with its measured cause).

Causes are derived from what the run measured, not written in advance: CPU split by owner
(workers, broker, database, gateway, other load on the machine), worker CPU per payment,
how busy each worker process was, circuit-breaker trips, retry lateness.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.common import LATENCY_SHAPES, latency_key, workers_phrase
from bench.figures import Figure, Run

if TYPE_CHECKING:
    from bench.run import Results

PEERS = ("dramatiq", "celery")


def rate(value: float, unit: str = "/s") -> str:
    return f"{value:,.0f}{unit}"


def spread(figure: Figure) -> str:
    if not figure.runs:
        return "-"
    if len(figure.runs) == 1:
        return "1 run"
    low, high = figure.spread
    return f"{len(figure.runs)} runs: {low:,.0f}-{high:,.0f}"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b > 0 else "-"


def pct(a: float, b: float) -> str:
    return f"{100 * a / b:.0f}%" if b > 0 else "-"


def worker_utilisation(run: Run, workers: int) -> float:
    """Average % of one core each worker process used over the CPU window."""
    seconds = run.cpu.get("seconds", 0.0)
    if seconds <= 0 or workers <= 0:
        return 0.0
    return 100 * run.cpu.get("workers_cpu_s", 0.0) / (seconds * workers)


def cost(run: Run) -> str:
    """Machine CPU per payment, by owner."""
    return (
        f"CPU/payment {run.system_cpu_ms():.2f} ms (workers {run.cpu_ms('workers'):.2f}, "
        f"broker {run.cpu_ms('broker'):.2f}, db {run.cpu_ms('db'):.2f}, "
        f"gateway {run.cpu_ms('gateway'):.2f})"
    )


def cpu_split(run: Run | None) -> str:
    if run is None or not run.cpu:
        return ""
    c = run.cpu
    parts = [f"machine {c.get('busy', 0):.0f}% busy"]
    for name in ("workers", "broker", "db", "gateway", "harness", "foreign"):
        if name in c:
            label = "other load" if name == "foreign" else name
            parts.append(f"{label} {c[name]:.0f}%")
    if c.get("stolen", 0) >= 0.5:
        parts.append(f"stolen by the hypervisor {c['stolen']:.0f}%")
    return ", ".join(parts)


def checks(figure: Figure) -> str:
    if figure.error:
        return f"FAILED: {figure.error[:300]}"
    if not figure.runs:
        return "-"
    doubles = sum(int(r.checks.get("double_charged", 0)) for r in figure.runs)
    total = sum(r.count for r in figure.runs)
    ok = sum(int(r.checks.get("statuses", {}).get("succeeded", 0)) for r in figure.runs)
    left = sum(int(r.checks.get("queue_left", 0)) for r in figure.runs)
    text = f"{doubles} double charges; {ok:,}/{total:,} succeeded"
    if left:
        text += f"; {left} left in queue"
    return text


@dataclass
class Verdict:
    target: str
    measured: str
    met: bool | None  # None: could not be measured
    cause: str = ""

    def row(self) -> str:
        verdict = "met" if self.met else ("not measured" if self.met is None else "**gap**")
        return f"| {self.target} | {self.measured} | {verdict} | {self.cause or '-'} |"


def _fig(results: Results, key: str) -> Figure | None:
    figure = results.figure(key)
    return figure if figure is not None and figure.ok else None


# ---- the results table ------------------------------------------------------------------------


def _results_rows(results: Results) -> list[str]:
    rows: list[str] = []

    def add(num: str, what: str, figure: Figure | None, vs: str = "", notes: str = "") -> None:
        if figure is None:
            return
        median = f"{figure.rate:,.0f} {figure.unit}" if figure.ok else "-"
        note = "; ".join(x for x in (checks(figure) if figure.unit != "msgs/s" else "", notes) if x)
        if figure.error and figure.unit == "msgs/s":
            note = f"FAILED: {figure.error[:300]}"
        rows.append(
            f"| {num} | {what} | {median} | {spread(figure)} | {vs or '-'} | {note or '-'} |"
        )

    ceiling = _fig(results, "ceiling.quorum.consume")
    add(
        "1",
        "bare aio-pika, quorum queue: consume + manual ack (prefetch 500)",
        results.figure("ceiling.quorum.consume"),
        "the ceiling",
    )
    add(
        "1",
        "bare aio-pika, quorum queue: confirmed persistent publish (500 in flight)",
        results.figure("ceiling.quorum.publish"),
    )
    add(
        "1",
        "bare aio-pika, classic queue (the peers' kind): consume + ack",
        results.figure("ceiling.classic.consume"),
        "reference",
    )
    add(
        "1",
        "bare aio-pika, classic queue: confirmed persistent publish",
        results.figure("ceiling.classic.publish"),
        "reference",
    )

    for db, _reps in results.plan.zero_dbs:
        one = _fig(results, f"zero.{db}.payproc1")
        two = _fig(results, f"zero.{db}.payproc2")
        peers = {p: _fig(results, f"zero.{db}.{p}") for p in PEERS}
        for key, num, what in (
            ("payproc1", "2", f"payproc, 1 worker, {db}, 0 ms gateway"),
            ("payproc2", "2", f"payproc, 2 workers, {db}, 0 ms gateway"),
            ("dramatiq", "3", f"Dramatiq 2 proc x 8 threads, {db}, 0 ms gateway"),
            ("celery", "3", f"Celery threads x 16 (prefetch 64, acks_late), {db}, 0 ms gateway"),
        ):
            figure = results.figure(f"zero.{db}.{key}")
            if figure is None:
                continue
            vs = ""
            if figure.ok and key == "payproc1" and ceiling is not None:
                vs = f"{pct(figure.rate, ceiling.rate)} of ceiling"
            elif figure.ok and key == "payproc2":
                vs = ", ".join(
                    f"{ratio(figure.rate, p.rate)} {name.title()}"
                    for name, p in peers.items()
                    if p is not None
                )
                if one is not None:
                    vs += f", {ratio(figure.rate, one.rate)} 1 worker"
            elif figure.ok and key in PEERS and two is not None:
                vs = f"payproc 2w = {ratio(two.rate, figure.rate)}"
            run = figure.median_run()
            notes = ""
            if run is not None:
                notes = f"{cost(run)}; peak RSS {run.rss_mb:.0f} MB; {cpu_split(run)}"
            add(num, what, figure, vs, notes)

    db, lat = results.plan.latency_db, results.plan.latency
    dramatiq_lat = _fig(results, f"lat.{db}.dramatiq")
    shapes = [
        (
            latency_key(workers, prefetch),
            workers * prefetch,
            f"payproc, {workers_phrase(workers)}, prefetch {prefetch}"
            f"{' each' if workers > 1 else ''}, {db}, {lat * 1000:g} ms gateway",
        )
        for workers, prefetch in LATENCY_SHAPES
    ]
    shapes += [
        ("dramatiq", 16, f"Dramatiq 2x8, {db}, {lat * 1000:g} ms gateway"),
        ("celery", 16, f"Celery threads x 16, {db}, {lat * 1000:g} ms gateway"),
    ]
    for key, in_flight, what in shapes:
        figure = results.figure(f"lat.{db}.{key}")
        if figure is None:
            continue
        bound = in_flight / lat
        vs = f"{pct(figure.rate, bound)} of bound {bound:,.0f}/s" if figure.ok else ""
        if figure.ok and key.startswith("payproc") and dramatiq_lat is not None:
            vs += f"; {ratio(figure.rate, dramatiq_lat.rate)} Dramatiq"
        run = figure.median_run()
        add("4", what, figure, vs, f"{cost(run)}; {cpu_split(run)}" if run is not None else "")

    backlog = results.figure("retries.backlog")
    if backlog is not None:
        zero = _fig(results, f"zero.{results.plan.retry_db}.payproc1")
        run = backlog.median_run()
        if run is not None:
            goodput = float(run.extra.get("goodput", 0.0))
            steady = float(run.extra.get("steady_rate", 0.0))
            vs = f"{pct(goodput, zero.rate)} of zero-failure 1w" if zero is not None else ""
            delays = run.extra.get("delays", {})
            notes = (
                f"steady goodput {rate(steady)}; gateway requests "
                f"{run.checks.get('gateway_requests', 0):,}; retries {delays.get('retries', 0):,}, "
                f"{delays.get('within_pct', 0)}% within delay+1 s (late p50 "
                f"{delays.get('late_p50_s', 0)} s, p95 {delays.get('late_p95_s', 0)} s); "
                f"circuit opened {run.extra.get('circuit_opens', 0)}x, "
                f"{delays.get('spared', 0)} spared retries"
            )
            rows.append(
                f"| 5 | payproc 1 worker, {results.plan.retry_db}, 30% 503s, ladder "
                f"0.5/1/2 s, pre-filled backlog: goodput | {rate(goodput)} | 1 run | {vs or '-'} "
                f"| {checks(backlog)}; {notes}; {cpu_split(run)} |"
            )
        else:
            add("5", "payproc 1 worker, 30% transient, backlog", backlog)
    paced = results.figure("retries.paced")
    if paced is not None:
        run = paced.median_run()
        if run is not None:
            delays = run.extra.get("delays", {})
            rows.append(
                f"| 5 | same, paced at {results.plan.retry_paced_rate:g}/s (below capacity): "
                f"retry-delay accuracy | {delays.get('within_pct', 0)}% within delay+1 s | 1 run | "
                f"late p50 {delays.get('late_p50_s', 0)} s, p95 {delays.get('late_p95_s', 0)} s, "
                f"max {delays.get('late_max_s', 0)} s | {checks(paced)}; "
                f"{delays.get('retries', 0):,} "
                f"retries, {delays.get('early', 0)} early; circuit opened "
                f"{run.extra.get('circuit_opens', 0)}x |"
            )
        else:
            add("5", "payproc 1 worker, 30% transient, paced", paced)

    mem = results.figure("memory")
    if mem is not None:
        run = mem.median_run()
        if run is not None:
            rows.append(
                f"| 6 | payproc worker peak RSS, 1 worker draining {run.count:,} (sqlite) | "
                f"{run.rss_mb:.0f} MB | 1 run | drained at {rate(run.rate)} | {checks(mem)} |"
            )
        else:
            add("6", "payproc worker peak RSS, 50,000 backlog", mem)

    rows.extend(_admin_rows(results))
    sync = results.sync
    if sync:
        if "error" in sync:
            rows.append(
                "| + | synchronous charges via gRPC (bench.sync_rpc) | not available | - | - | "
                f"{sync['error']} |"
            )
        else:
            rows.append(
                f"| + | {sync.get('name', 'sync charges')}, {sync.get('concurrency')} callers | "
                f"{rate(float(sync.get('charges_per_s', 0)))} | 1 run | "
                f"p50 {sync.get('p50_ms')} ms, p99 {sync.get('p99_ms')} ms | "
                f"{sync.get('errors', 0)} errors of {sync.get('count')} |"
            )
    return rows


def _admin_rows(results: Results) -> list[str]:
    admin = results.admin
    if not admin:
        return []
    if not admin.get("available"):
        return [f"| 6 | admin: not available | - | - | - | {admin.get('reason', '')} |"]
    rows = []
    for db, m in admin.get("by_db", {}).items():
        if "error" in m:
            rows.append(f"| 6 | admin ({db}) | - | - | - | FAILED: {m['error']} |")
            continue
        n = m["entries"]
        for key, what in (
            ("list", "GET /dlq/messages (first page)"),
            ("list_filtered", "GET /dlq/messages?reason=gateway_rejected"),
            ("list_merchant", "GET /dlq/messages?merchant_id=m_7&status=parked"),
            ("list_deep", "GET /dlq/messages following next_cursor (deep pages)"),
            ("stats", "GET /dlq/stats"),
        ):
            p = m[key]
            rows.append(
                f"| 6 | admin {what}, {n:,} entries, {db} | p50 {p['p50_ms']} ms / p95 "
                f"{p['p95_ms']} ms | {p['n']} requests | max {p['max_ms']} ms | - |"
            )
        rows.append(
            f"| 6 | admin POST /dlq/replay (bulk, limit {m['replay_requested']:,}), {db} | "
            f"{rate(m['replay_rate'])} | 1 run | {m['replayed']:,} replayed in "
            f"{m['replay_seconds']} s | {m['replay_queue_depth']:,} messages landed in the "
            f"request queue; token bucket raised to 100,000/s (default 500/s) |"
        )
    return rows


# ---- targets ------------------------------------------------------------------------------


def _one_worker_cause(results: Results, db: str, ceiling: Figure) -> str:
    one = _fig(results, f"zero.{db}.payproc1")
    if one is None or (run := one.median_run()) is None:
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


def _five_x_cause(
    figure: Figure, dramatiq: Figure, zero_same: Figure | None, run: Run | None
) -> str:
    needed = 5 * dramatiq.rate
    text = f"5x Dramatiq is {rate(needed)}"
    if zero_same is not None and needed > zero_same.rate:
        text += (
            f", more than as many payproc workers do even with a 0 ms gateway "
            f"({rate(zero_same.rate)}): the latency is hidden, the workers' own cost is the limit"
        )
    else:
        text += ": the workers are held below their bound (next row)"
    return f"{text}; {cpu_split(run)}"


def _goodput_cause(run: Run, zero: Figure, steady: float) -> str:
    """Why goodput under failures falls short: what a failed attempt costs the worker, and
    how much of the drain is the retry ladder's tail."""
    calls = int(run.checks.get("gateway_requests", 0))
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
            f"{run.extra.get('delays', {}).get('late_p50_s')} s), when the worker is mostly idle"
        )
    return text


def _vs_peer_cause(results: Results, db: str, peer_name: str, factor: float) -> str:
    two = _fig(results, f"zero.{db}.payproc2")
    peer = _fig(results, f"zero.{db}.{peer_name}")
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
        text = (
            f"the 2 cores are the limit ({cpu_split(run)}); {text}: {factor:g}x "
            f"{peer_name.title()} on this machine needs about "
            f"{prun.system_cpu_ms() / factor:.2f} ms per payment"
        )
    else:
        text = (
            f"the machine still had idle CPU ({cpu_split(run)}): each payproc worker is "
            f"latency-bound (see the 1-worker row); {text}"
        )
    return text


def _replay_cause(m: dict[str, Any]) -> str:
    chunk, slots = m.get("bulk_chunk"), m.get("bulk_concurrency")
    if not chunk:  # an admin from before chunked bulk replays
        return (
            "each entry is replayed by its own claim commit, confirmed publish and finish "
            "commit; and the default token bucket (PAYPROC_ADMIN_REPLAY_RATE) allows 500/s"
        )
    text = (
        f"chunks of {chunk} entries, {slots or 1} in flight (one claim transaction, confirms "
        "pipelined, one settling transaction): the admin process's CPU is the limit, two "
        "confirmed publishes per entry (the request and its payment.replayed event) and "
        "about four round trips to the database per chunk; on a busy machine it shares the "
        "2 cores with the broker and the database"
    )
    if m.get("replay_rate"):
        text += f" ({1000 / m['replay_rate']:.2f} ms per entry here)"
    return text + "; the default token bucket (PAYPROC_ADMIN_REPLAY_RATE) allows 500/s"


def _targets(results: Results) -> list[Verdict]:
    plan = results.plan
    out: list[Verdict] = []
    ceiling = _fig(results, "ceiling.quorum.consume")
    ran = set(results.scenarios)
    for db, _reps in plan.zero_dbs if "zero" in ran else ():
        two = _fig(results, f"zero.{db}.payproc2")
        one = _fig(results, f"zero.{db}.payproc1")
        done = len(two.runs) if two is not None else 0  # the round budget may stop early
        runs = f"median of {done}" if done > 1 else "1 run"
        for name, factor in (("dramatiq", 2.0), ("celery", 3.0)):
            peer = _fig(results, f"zero.{db}.{name}")
            if two is None or peer is None:
                out.append(
                    Verdict(
                        f"0 ms, {db}: payproc 2 workers >= {factor:g}x {name.title()}", "-", None
                    )
                )
                continue
            met = two.rate >= factor * peer.rate
            out.append(
                Verdict(
                    f"0 ms, {db}: payproc 2 workers >= {factor:g}x {name.title()}",
                    f"{rate(two.rate)} vs {rate(peer.rate)} = "
                    f"{ratio(two.rate, peer.rate)} ({runs})",
                    met,
                    "" if met else _vs_peer_cause(results, db, name, factor),
                )
            )
        if one is not None and ceiling is not None:
            met = one.rate >= 0.15 * ceiling.rate
            out.append(
                Verdict(
                    f"0 ms, {db}: payproc 1 worker >= 15% of bare aio-pika",
                    f"{rate(one.rate)} vs {rate(ceiling.rate)} = {pct(one.rate, ceiling.rate)}",
                    met,
                    "" if met else _one_worker_cause(results, db, ceiling),
                )
            )
    db, lat = plan.latency_db, plan.latency
    dramatiq = _fig(results, f"lat.{db}.dramatiq")
    for workers, prefetch in LATENCY_SHAPES if "latency" in ran else ():
        shape = f"{lat * 1000:g} ms, {workers_phrase(workers)}, prefetch {prefetch}"
        figure = _fig(results, f"lat.{db}.{latency_key(workers, prefetch)}")
        if figure is None:
            out.append(Verdict(shape, "-", None))
            continue
        # "until the CPU limits it": the effective bound is the lower of prefetch/latency and
        # what the same workers do when the gateway costs nothing (their 0 ms figure).
        zero_same = _fig(results, f"zero.{db}.payproc{workers}")
        zero_run = zero_same.median_run() if zero_same is not None else None
        run = figure.median_run()
        used = worker_utilisation(run, workers) if run is not None else 0.0
        if dramatiq is not None:
            met = figure.rate >= 5 * dramatiq.rate
            out.append(
                Verdict(
                    f"{shape}: payproc >= 5x Dramatiq",
                    f"{rate(figure.rate)} vs {rate(dramatiq.rate)} = "
                    f"{ratio(figure.rate, dramatiq.rate)}",
                    met,
                    "" if met else _five_x_cause(figure, dramatiq, zero_same, run),
                )
            )
        bound = workers * prefetch / lat
        cpu_limit = zero_same.rate if zero_same is not None else bound
        effective = min(bound, cpu_limit)
        limit = "prefetch/latency" if effective == bound else f"the 0 ms {workers}-worker figure"
        met = figure.rate >= 0.85 * effective
        cause = ""
        if not met:
            in_flight_ms = 1000 * workers * prefetch / figure.rate
            own_ms = in_flight_ms - 1000 * lat
            cause = (
                f"each worker used {used:.0f}% of a core ({cpu_split(run)}) and "
                f"{run.cpu_ms('workers') if run else 0:.2f} ms of CPU per payment vs "
                f"{zero_run.cpu_ms('workers') if zero_run else 0:.2f} ms at 0 ms; each payment "
                f"spent ~{in_flight_ms:.0f} ms in flight, {1000 * lat:.0f} ms of it at the "
                f"gateway and ~{own_ms:.0f} ms in payproc's own commits, confirms and "
                "event-loop queueing"
            )
        out.append(
            Verdict(
                f"{shape}: >= 85% of prefetch/latency ({bound:,.0f}/s) until the CPU limits "
                f"it (0 ms {workers}-worker figure {rate(cpu_limit)})",
                f"{rate(figure.rate)} = {pct(figure.rate, effective)} of {limit}",
                met,
                cause,
            )
        )

    backlog = _fig(results, "retries.backlog")
    zero = _fig(results, f"zero.{plan.retry_db}.payproc1")
    if backlog is not None and zero is not None and (run := backlog.median_run()) is not None:
        goodput = float(run.extra.get("goodput", 0.0))
        steady = float(run.extra.get("steady_rate", 0.0))
        met = goodput >= 0.6 * zero.rate
        opens = int(run.extra.get("circuit_opens", 0))
        cause = ""
        if not met:
            cause = _goodput_cause(run, zero, steady)
            if opens:
                cause += (
                    f"; the circuit breaker opened {opens}x on random 30% failures and paused "
                    "consumption each time"
                )
        out.append(
            Verdict(
                "30% transient: goodput >= 60% of the zero-failure figure",
                f"{rate(goodput)} vs {rate(zero.rate)} = {pct(goodput, zero.rate)} (whole drain)",
                met,
                cause,
            )
        )
    elif "retries" in ran:
        why = "needs the zero scenario's 1-worker figure" if "zero" not in ran else "-"
        out.append(Verdict("30% transient: goodput >= 60% of zero-failure", why, None))
    backlog_label = f"{plan.retry_count:,} backlog"
    for key, what in (("retries.paced", "paced load"), ("retries.backlog", backlog_label)):
        figure = _fig(results, key)
        if figure is None or (run := figure.median_run()) is None:
            continue
        delays = run.extra.get("delays", {})
        within = float(delays.get("within_pct", 0.0))
        met = within >= 100.0
        cause = ""
        if not met:
            if key == "retries.backlog":
                cause = (
                    f"late p50 {delays.get('late_p50_s')} s, p95 {delays.get('late_p95_s')} s: a "
                    "retry dead-letters back to the *end* of the request queue, so under a "
                    "backlog it also waits for every message ahead of it"
                )
            else:
                cause = f"late p95 {delays.get('late_p95_s')} s, max {delays.get('late_max_s')} s"
        out.append(
            Verdict(
                f"retry-delay accuracy ({what}): every retry within its delay + 1 s",
                f"{within}% of {delays.get('retries', 0):,} retries",
                met,
                cause,
            )
        )

    mem = _fig(results, "memory")
    if mem is not None and (run := mem.median_run()) is not None:
        met = run.rss_mb <= 150
        out.append(
            Verdict(
                f"worker peak RSS <= 150 MB with a {run.count:,} backlog",
                f"{run.rss_mb:.0f} MB",
                met,
            )
        )
    admin = results.admin
    if admin and admin.get("available"):
        for db, m in admin.get("by_db", {}).items():
            if "error" in m:
                out.append(Verdict(f"admin ({db})", m["error"][:200], None))
                continue
            worst = max(
                m["list"]["p95_ms"], m["list_filtered"]["p95_ms"], m["list_merchant"]["p95_ms"]
            )
            out.append(
                Verdict(
                    f"admin list p95 <= 50 ms at {m['entries']:,} entries ({db})",
                    f"worst p95 {worst} ms (first page, filtered, by merchant); deep pages "
                    f"p95 {m['list_deep']['p95_ms']} ms",
                    worst <= 50,
                )
            )
            met = m["replay_rate"] >= 2000
            out.append(
                Verdict(
                    f"bulk replay >= 2,000 messages/s ({db})",
                    f"{rate(m['replay_rate'])}",
                    met,
                    "" if met else _replay_cause(m),
                )
            )
    elif admin:
        out.append(Verdict("admin targets", "admin: not available", None, admin.get("reason", "")))

    doubles = sum(
        int(r.checks.get("double_charged", 0)) for f in results.figures.values() for r in f.runs
    )
    drains = sum(len(f.runs) for f in results.figures.values() if f.unit != "msgs/s")
    out.append(Verdict("no double charge in any run", f"{doubles} in {drains} runs", doubles == 0))
    out.append(
        Verdict(
            "`make bench` under 15 minutes",
            f"{results.total_seconds / 60:.1f} min",
            results.total_seconds < 900 if results.plan.name == "full" else None,
            "" if results.plan.name == "full" else f"{results.plan.name} plan",
        )
    )
    return out


def render(results: Results) -> str:
    m = results.machine
    lines = [
        "# payproc benchmark",
        "",
        f"Plan `{results.plan.name}`, scenarios: {', '.join(results.scenarios)}; total "
        f"{results.total_seconds / 60:.1f} min "
        f"({', '.join(f'{k} {v:.0f} s' for k, v in results.scenario_seconds.items())}).",
        "",
        f"**Machine**: {m.get('cpu')}, {m.get('cores')} cores, {m.get('ram_gib')} GiB RAM; "
        f"RabbitMQ {m.get('rabbitmq')}, PostgreSQL {m.get('postgresql')}, Python "
        f"{m.get('python')}, Linux {m.get('kernel')}; {m.get('libraries')}. "
        f"CPU busy before the run (other load): {results.background_busy:.0f}%.",
        "",
        "Every drain: queue pre-filled first (confirmed, persistent, durable queues), real worker "
        "processes started after, timed from the first payment picked up to the last payment's "
        "row final; fresh namespace/queue, database and fake-gateway process per run. The same "
        "message (payproc's producer) and the same job for everyone: validate, charge with "
        "`Idempotency-Key: payment_id`, record the outcome. CPU shares are of the whole "
        "machine (2 cores = 100%); broker and db include any other client of the shared "
        "RabbitMQ/PostgreSQL, other load is every process that is not ours; on a shared VM, "
        "CPU stolen by the hypervisor (when at least 0.5%) slows every process alike.",
        "",
        "| # | configuration | result (median) | runs (min-max) | ratio | checks / notes |",
        "|---|---|---|---|---|---|",
        *_results_rows(results),
        "",
        "## Targets",
        "",
        "| target | measured | verdict | cause of the gap (measured) |",
        "|---|---|---|---|",
        *(v.row() for v in _targets(results)),
    ]
    return "\n".join(lines)


def exit_status(results: Results) -> int:
    for figure in results.figures.values():
        if figure.error:
            return 1
        if any(int(r.checks.get("double_charged", 0)) for r in figure.runs):
            return 1
    return 0


def as_dict(results: Results) -> dict[str, Any]:  # pragma: no cover - debugging aid
    return {k: [r.__dict__ for r in f.runs] for k, f in results.figures.items()}
