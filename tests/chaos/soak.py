"""``make chaos``: the long soak. 10,000 payments, 30% 503s, 5% charge-then-timeout, three
worker SIGKILLs, two connection drops (a proxy cut and ``rabbitmqctl close_all_connections``)
and one broker restart (``rabbitmqctl stop_app`` / ``start_app``, always restarted).

Prints the fault/outcome table and exits non-zero if an invariant fails. It disturbs every
client of the local broker: run it alone, never next to other tests.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.chaos.harness import ChaosRun, assert_invariants
from tests.support.broker import AMQP_URL


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, timeout=120)


async def soak(payments: int, workdir: Path) -> int:
    run = ChaosRun(
        AMQP_URL,
        f"sqlite:///{workdir / 'soak.db'}",
        workdir,
        delays=(0.5, 1.0, 2.0, 4.0),
        max_attempts=8,
        gateway_timeout=0.5,
        prefetch=100,
    )
    try:
        await run.open(failure_rate=0.3, charge_then_timeout_rate=0.05, hang_seconds=1.0)
        await run.start_worker(0, proxied=True)
        await run.start_worker(1)
        await run.publish(payments, malformed=200, duplicates=50, conflicts=10)
        started = time.monotonic()
        plan = ["kill", "cut", "kill", "close_all", "broker_restart", "kill"]
        for step in plan:
            await asyncio.sleep(3)  # spacing between faults, so each lands on a busy system
            await run.restart_dead_workers()
            if step == "kill":
                await run.kill_worker(1)
            elif step == "cut":
                await run.cut_connection(0)
            elif step == "close_all":
                rabbitmqctl("close_all_connections", "payproc chaos soak")
                run.faults["close_all_connections"] += 1
            elif step == "broker_restart":
                try:
                    rabbitmqctl("stop_app")
                    run.faults["broker restart"] += 1
                    await asyncio.sleep(3)  # the broker is down this long
                finally:
                    rabbitmqctl("start_app")
                    rabbitmqctl("await_startup")
        await run.settle(timeout=900)
        report = await run.verify(time.monotonic() - started)
        print(report.table())
        try:
            assert_invariants(report, run)
        except AssertionError as exc:
            print(f"INVARIANT FAILED: {exc}", file=sys.stderr)
            return 1
        print("soak: all invariants hold")
        return 0
    finally:
        await run.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--payments", type=int, default=10_000)
    ns = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="payproc-soak-") as tmp:
        os.environ.setdefault("PAYPROC_LOG_LEVEL", "INFO")
        return asyncio.run(soak(ns.payments, Path(tmp)))


if __name__ == "__main__":
    sys.exit(main())
