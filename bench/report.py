"""The report: one markdown document (printed and written to ``bench/results.md``) with the
machine it ran on, every figure with its spread and checks (``bench.rows``), the ratios the
targets ask for, and a verdict per target, met or the gap with its measured cause
(``bench.targets``, ``bench.causes``).

It reads a finished ``Results`` and nothing else: it imports no scenario.
"""

from __future__ import annotations

from bench.results import Results
from bench.rows import results_rows
from bench.targets import verdicts

METHOD = (
    "Every drain: queue pre-filled first (confirmed, persistent, durable queues), real worker "
    "processes started after, timed from the first payment picked up to the last payment's "
    "row final; fresh namespace/queue, database and fake-gateway process per run. The same "
    "message (payproc's producer) and the same job for everyone: validate, charge with "
    "`Idempotency-Key: payment_id`, record the outcome. CPU shares are of the whole "
    "machine (2 cores = 100%); broker and db include any other client of the shared "
    "RabbitMQ/PostgreSQL, other load is every process that is not ours; on a shared VM, "
    "CPU stolen by the hypervisor (when at least 0.5%) slows every process alike."
)


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
        METHOD,
        "",
        "| # | configuration | result (median) | runs (min-max) | ratio | checks / notes |",
        "|---|---|---|---|---|---|",
        *results_rows(results),
        "",
        "## Targets",
        "",
        "| target | measured | verdict | cause of the gap (measured) |",
        "|---|---|---|---|",
        *(v.row() for v in verdicts(results)),
    ]
    return "\n".join(lines)


def exit_status(results: Results) -> int:
    """1 if a run failed outright or showed a double charge; missed targets do not count."""
    for figure in results.figures.values():
        if figure.error:
            return 1
        if any(r.checks.double_charged for r in figure.runs):
            return 1
    return 0
