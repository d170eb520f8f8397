"""``payproc demo``: the whole system on one machine, end to end, with a summary table.

Starts the fake gateway (with injected failures) and a worker as real processes, publishes a
few hundred payments plus a handful of malformed messages, waits until every one has a final
state, and prints what happened, including the double-charge count read from the gateway's
own ledger.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import orjson
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import func, select

from processor.config import load_settings
from processor.db import create_schema, make_engine
from processor.producer import generate_payments, payment_message, publish_bodies, request_message
from retry.names import Names
from retry.topology import declare_topology, delete_topology
from schemas import headers as h
from schemas.tables import PaymentRow

DEMO_NAMESPACE = "payproc-demo"
DEMO_DELAYS = (0.5, 1.0, 2.0)
DEMO_MAX_ATTEMPTS = 4
INVALID_MESSAGES: list[tuple[bytes, str]] = [
    (b"this is not json", "application/json"),
    (b'{"payment_id": "not-a-uuid", "amount": 5, "currency": "EUR"}', "application/json"),
    (b'{"amount": -1}', "application/json"),
    (
        orjson.dumps(
            {
                "payment_id": "0b7d6c1e-3c1f-4a52-9a4e-8f0f4c2a9d11",
                "amount": 100,
                "currency": "EUR",
                "merchant_id": "m_1",
                "payment_method": "4242 4242 4242 4242",
            }
        ),
        "application/json",
    ),
    (b"<xml/>", "application/xml"),
]

console = Console()
_PAYMENTS: Any = PaymentRow.__table__  # type: ignore[attr-defined]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


DEMO_STRIPE_KEY = "sk_test_payproc_demo"
"""A test-mode key for the local Stripe-speaking server; the demo never talks to Stripe."""


def run_demo(ns: argparse.Namespace) -> int:
    return asyncio.run(_demo(ns.count, keep=ns.keep, gateway=getattr(ns, "gateway", "payproc")))


async def _demo(count: int, *, keep: bool, gateway: str = "payproc") -> int:
    base = load_settings()
    workdir = _fresh_workdir()
    db_path = workdir / "demo.db"
    database_url = f"sqlite:///{db_path}"
    names = Names(DEMO_NAMESPACE)
    try:
        connection = await aio_pika.connect_robust(base.amqp_url, timeout=5)
    except Exception as exc:
        console.print(
            f"[red]payproc demo: cannot reach RabbitMQ at {base.amqp_url} ({type(exc).__name__})."
            " Start one with `rabbitmq-server -detached` (or `make demo`, which does).[/red]"
        )
        return 2
    await delete_topology(connection, names, DEMO_DELAYS)
    await declare_topology(connection, names, DEMO_DELAYS, base.delivery_limit)
    engine = make_engine(database_url)
    await create_schema(engine)

    port = _free_port()
    gateway_url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PAYPROC_AMQP_URL": base.amqp_url,
        "PAYPROC_NAMESPACE": names.namespace,
        "PAYPROC_DATABASE_URL": database_url,
        "PAYPROC_GATEWAY_URL": gateway_url,
        "PAYPROC_GATEWAY_TIMEOUT": "1",
        "PAYPROC_RETRY_DELAYS": ",".join(f"{d:g}" for d in DEMO_DELAYS),
        "PAYPROC_MAX_ATTEMPTS": str(DEMO_MAX_ATTEMPTS),
        "PAYPROC_LOG_LEVEL": "WARNING",
        "PAYPROC_METRICS_BIND": "127.0.0.1:0",
        "PAYPROC_GATEWAY": gateway,
    }
    if gateway == "stripe":  # the worker speaks Stripe's API to the local server, never Stripe
        env |= {"PAYPROC_STRIPE_API_KEY": DEMO_STRIPE_KEY, "PAYPROC_STRIPE_API_BASE": gateway_url}
    logs = open(workdir / "demo-processes.log", "wb")  # noqa: SIM115, ASYNC230 - closed in finally
    gateway_args = [
        "--port",
        str(port),
        "--seed",
        "42",
        "--failure-rate",
        "0.15",
        "--rate-limit-rate",
        "0.03",
        "--retry-after",
        "1",
        "--charge-then-timeout-rate",
        "0.02",
        "--timeout-rate",
        "0.01",
        "--hang-seconds",
        "3",
    ]
    if gateway == "stripe":
        server = [*gateway_args, "--processing-seconds", "1"]
        processes = [_spawn(server, env, logs, module="processor.fake_stripe")]
    else:
        processes = [_spawn(["fake-gateway", *gateway_args], env, logs)]
    try:
        await _wait_http(gateway_url + "/healthz")
        processes.append(_spawn(["worker"], env, logs))
        console.print(
            f"[bold]payproc demo[/bold]: namespace {names.namespace!r}, "
            f"{'local Stripe-speaking server' if gateway == 'stripe' else 'fake gateway'} "
            f"{gateway_url} (15% 503, 3% 429, 2% charge-then-timeout, 1% timeout), "
            f"retry ladder {', '.join(f'{d:g}s' for d in DEMO_DELAYS)}"
        )
        payments = list(
            generate_payments(
                count, seed=random.randrange(2**32), decline_rate=0.05, reject_rate=0.02
            )
        )
        messages = [payment_message(p) for p in payments]
        messages += [request_message(body, content_type=ct) for body, ct in INVALID_MESSAGES]
        started = time.monotonic()
        with Progress(console=console) as progress:
            publishing = progress.add_task("publishing (confirmed)", total=len(messages))
            await publish_bodies(
                connection, names, messages, on_confirmed=lambda n: progress.advance(publishing, n)
            )
            finishing = progress.add_task("payments in a final state", total=len(payments))
            while True:
                final = await _count_settled(engine)
                progress.update(finishing, completed=final)
                if final >= len(payments):
                    break
                if time.monotonic() - started > 180:
                    console.print("[red]timed out waiting for payments to finish[/red]")
                    return 1
                if processes[1].poll() is not None:
                    console.print("[red]the worker exited; see .payproc/demo-processes.log[/red]")
                    return 1
                await asyncio.sleep(0.25)
        rows = await _statuses(engine)
        in_doubt = rows["status"]["unknown"]
        if in_doubt:
            # The answer to a last attempt was lost and the lookup could not say either: the
            # operator's tool settles them (the admin service does it continuously).
            rows = await _reconcile(env, engine, logs)
        elapsed = time.monotonic() - started
        expected_parked = len(INVALID_MESSAGES) + rows["status"]["dead_lettered"] + in_doubt
        parked = await _browse_dlq(connection, names.dlq, expected_parked)
        async with httpx.AsyncClient() as client:
            answer = await client.get(gateway_url + "/_stats", params={"summary": "1"})
        stats = answer.json()
        return _report(rows, parked, stats, len(payments), len(INVALID_MESSAGES), elapsed, in_doubt)
    finally:
        for proc in reversed(processes):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in processes:
            try:
                proc.wait(timeout=35)
            except subprocess.TimeoutExpired:
                proc.kill()
        logs.close()
        await engine.dispose()
        if not keep:
            await delete_topology(connection, names, DEMO_DELAYS)
        await connection.close()


def _fresh_workdir() -> Path:
    workdir = Path(".payproc")
    workdir.mkdir(exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(workdir / f"demo.db{suffix}")
    return workdir


def _spawn(
    args: list[str], env: dict[str, str], logs: Any, module: str = "processor"
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", module, *args], env=env, stdout=logs, stderr=subprocess.STDOUT
    )


async def _wait_http(url: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(100):
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


async def _count_settled(engine: Any) -> int:
    """Payments the worker is done with: final, or ``unknown`` (waiting for a lookup)."""
    async with engine.connect() as conn:
        result = await conn.execute(
            select(func.count()).where(
                _PAYMENTS.c.status.in_(["succeeded", "declined", "dead_lettered", "unknown"])
            )
        )
        return int(result.scalar_one())


async def _reconcile(env: dict[str, str], engine: Any, logs: Any) -> dict[str, Counter[str]]:
    """Run ``payproc reconcile`` (a few times: the demo gateway fails lookups too) until no
    payment is ``unknown``; returns the statuses afterwards."""
    rows = await _statuses(engine)
    for _ in range(20):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "processor", "reconcile", env=env, stdout=logs, stderr=logs
        )
        await proc.wait()
        rows = await _statuses(engine)
        if not rows["status"]["unknown"]:
            break
    return rows


async def _statuses(engine: Any) -> dict[str, Counter[str]]:
    async with engine.connect() as conn:
        result = await conn.execute(select(_PAYMENTS.c.status, _PAYMENTS.c.attempts))
        rows = result.all()
    return {
        "status": Counter(str(r[0]) for r in rows),
        "retried": Counter("retried" for r in rows if int(r[1]) > 1),
    }


async def _browse_dlq(connection: Any, queue_name: str, expected: int) -> Counter[str]:
    """Read the parked messages' reasons without consuming them (they are returned)."""
    reasons: Counter[str] = Counter()
    channel = await connection.channel()
    queue = await channel.get_queue(queue_name, ensure=False)
    deadline = time.monotonic() + 10
    held = []
    while time.monotonic() < deadline:
        message = await queue.get(no_ack=False, fail=False)
        if message is None:
            if sum(reasons.values()) >= expected:
                break
            await asyncio.sleep(0.1)
            continue
        held.append(message)
        reasons[str((message.headers or {}).get(h.REASON, "unknown"))] += 1
    await channel.close()  # un-acked messages go back to the DLQ for the operator
    return reasons


def _report(
    rows: dict[str, Counter[str]],
    parked: Counter[str],
    stats: dict[str, Any],
    payments: int,
    invalid: int,
    elapsed: float,
    in_doubt: int = 0,
) -> int:
    status = rows["status"]
    double = len(stats.get("double_charged", []))
    table = Table(
        title=f"payproc demo: {payments} payments + {invalid} malformed messages in {elapsed:.1f} s"
    )
    table.add_column("outcome")
    table.add_column("count", justify="right")
    table.add_row("succeeded", str(status["succeeded"]))
    table.add_row("declined", str(status["declined"]))
    table.add_row("retried at least once", str(rows["retried"]["retried"]))
    if in_doubt:
        table.add_row("answer lost, settled by `payproc reconcile`", str(in_doubt))
    for reason, n in sorted(parked.items()):
        table.add_row(f"parked in DLQ: {reason}", str(n))
    table.add_row("gateway requests", str(stats.get("requests")))
    table.add_row("charges made", str(stats.get("charges")))
    table.add_row("double charges", f"[{'green' if double == 0 else 'red'}]{double}[/]")
    console.print(table)
    if status["unknown"]:
        console.print(f"[red]{status['unknown']} payments still have an unknown outcome[/red]")
    accounted = status["succeeded"] + status["declined"] + status["dead_lettered"]
    console.print(
        "Parked messages stay in the DLQ: browse and replay them with `payproc admin` and "
        "`payproc dlq list` (see README, Operations)."
    )
    return 0 if double == 0 and accounted == payments else 1
