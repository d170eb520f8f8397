"""Honest resource accounting: peak RSS of process trees, CPU split by owner (workers,
broker, database, gateway, other load), and the machine a run was measured on."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.database import pg_version


@dataclass
class RssSampler:
    """Samples the RSS of some process trees every ``interval`` seconds; keeps each peak.

    ``peak_mb`` is the largest single process's peak (a worker process's memory, which is
    what the target is about), ``peak_total_mb`` the largest sum over all sampled processes.
    """

    roots: list[int]
    interval: float = 0.1
    peak_mb: float = 0.0
    peak_total_mb: float = 0.0
    _task: asyncio.Task[None] | None = None

    def _sample(self) -> None:
        total = 0
        for root in self.roots:
            try:
                parent = psutil.Process(root)
                procs = [parent, *parent.children(recursive=True)]
            except psutil.Error:
                continue
            for proc in procs:
                try:
                    rss = proc.memory_info().rss
                except psutil.Error:
                    continue
                total += rss
                self.peak_mb = max(self.peak_mb, rss / 2**20)
        self.peak_total_mb = max(self.peak_total_mb, total / 2**20)

    async def _run(self) -> None:
        while True:
            self._sample()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._sample()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _cpu_snapshot() -> dict[int, tuple[float, float, str, str]]:
    snap: dict[int, tuple[float, float, str, str]] = {}
    for proc in psutil.process_iter(["create_time", "username", "name"]):
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        info = proc.info
        snap[proc.pid] = (
            times.user + times.system,
            float(info.get("create_time") or 0.0),
            str(info.get("username") or ""),
            str(info.get("name") or ""),
        )
    return snap


@dataclass
class CpuWatch:
    """CPU used during a window, split by owner, as % of the whole machine (all cores).

    ``groups`` names process trees of interest (``workers``, ``gateway``); the rest of this
    harness's own tree is ``harness``; ``broker`` is the rabbitmq user's processes, ``db`` the
    postgres user's, and ``foreign`` everything else: background load that was on the machine
    while we measured (other people's test runs). ``<group>_cpu_s`` keeps CPU-seconds.
    """

    groups: dict[str, list[int]] = field(default_factory=dict)
    started: float = 0.0
    before: dict[int, tuple[float, float, str, str]] = field(default_factory=dict)
    result: dict[str, float] = field(default_factory=dict)
    steal_before: float = 0.0

    def start(self) -> None:
        self.before = _cpu_snapshot()
        self.steal_before = _steal_seconds()
        self.started = time.monotonic()

    def _members(self) -> dict[int, str]:
        owner: dict[int, str] = {}
        me = psutil.Process()
        owner[me.pid] = "harness"
        with contextlib.suppress(psutil.Error):
            for child in me.children(recursive=True):
                owner[child.pid] = "harness"
        for name, roots in self.groups.items():
            for root in roots:
                with contextlib.suppress(psutil.Error):
                    parent = psutil.Process(root)
                    owner[root] = name
                    for child in parent.children(recursive=True):
                        owner[child.pid] = name
        return owner

    def stop(self) -> dict[str, float]:
        owner = self._members()
        after = _cpu_snapshot()
        elapsed = max(time.monotonic() - self.started, 1e-6)
        split = {name: 0.0 for name in [*self.groups, "harness", "broker", "db", "foreign"]}
        for pid, (cpu, created, user, _name) in after.items():
            old = self.before.get(pid)
            used = cpu - old[0] if old is not None and old[1] == created else cpu
            if pid in owner:
                split[owner[pid]] += used
            elif user == "rabbitmq":
                split["broker"] += used
            elif user == "postgres":
                split["db"] += used
            else:
                split["foreign"] += used
        capacity = elapsed * (os.cpu_count() or 1)
        self.result = {k: round(100 * v / capacity, 1) for k, v in split.items()}
        self.result["busy"] = round(sum(100 * v / capacity for v in split.values()), 1)
        # CPU time the hypervisor gave to other guests while ours wanted it: on a shared VM it
        # varies from run to run and slows every process here alike.
        self.result["stolen"] = round(100 * (_steal_seconds() - self.steal_before) / capacity, 1)
        for name, used in split.items():
            self.result[f"{name}_cpu_s"] = round(used, 2)
        self.result["seconds"] = round(elapsed, 2)
        return self.result


def _steal_seconds() -> float:
    """Machine-wide CPU seconds stolen by the hypervisor since boot (0 where not reported)."""
    return float(getattr(psutil.cpu_times(), "steal", 0.0))


def background_busy(seconds: float = 1.0) -> float:
    """Machine-wide CPU busy % over ``seconds`` before we start (others' load)."""
    return float(psutil.cpu_percent(interval=seconds))


def machine_line(rabbit: str) -> dict[str, str]:
    cpu_model = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for module in ("aio_pika", "celery", "dramatiq", "sqlalchemy"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions[module] = version(module.replace("_", "-"))
    return {
        "cpu": cpu_model,
        "cores": str(os.cpu_count()),
        "ram_gib": f"{psutil.virtual_memory().total / 2**30:.1f}",
        "rabbitmq": rabbit,
        "postgresql": pg_version(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "libraries": ", ".join(f"{k} {v}" for k, v in versions.items()),
    }
