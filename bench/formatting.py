"""How the report writes numbers, spreads, CPU splits and a figure's checks; shared by the
results table (``bench.rows``), the targets (``bench.targets``) and their causes."""

from __future__ import annotations

from bench.figures import Figure, Run


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
    doubles = sum(r.checks.double_charged for r in figure.runs)
    total = sum(r.count for r in figure.runs)
    ok = sum(r.checks.statuses.get("succeeded", 0) for r in figure.runs)
    left = sum(r.checks.queue_left for r in figure.runs)
    text = f"{doubles} double charges; {ok:,}/{total:,} succeeded"
    if left:
        text += f"; {left} left in queue"
    return text
