"""``payproc`` command line: worker, topology, submit, fake-gateway, demo, admin, dlq."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

from processor.config import ConfigError, Settings, load_settings
from processor.logs import register_secret, setup_logging
from processor.migrate import SchemaBehind

Command = Callable[[argparse.Namespace], int]


def _settings(ns: argparse.Namespace) -> Settings:
    overrides: dict[str, object] = {}
    for name in ("amqp_url", "database_url", "gateway_url", "namespace", "prefetch"):
        value = getattr(ns, name, None)
        if value is not None:
            overrides[name] = value
    settings = load_settings(**overrides)
    register_secret(settings.admin_token)
    setup_logging(settings.log_format, settings.log_level)
    return settings


def _run(coro: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop

        return int(uvloop.run(coro))
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        return asyncio.run(coro)


def _install_stop(stop: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop)


def cmd_worker(ns: argparse.Namespace) -> int:
    from processor.worker import Worker, WorkerOptions

    settings = _settings(ns)

    async def main() -> int:
        worker = Worker(settings, WorkerOptions(grace_seconds=ns.grace))
        _install_stop(worker.stop)
        await worker.run()
        return 0

    return _run(main())


def cmd_topology(ns: argparse.Namespace) -> int:
    import aio_pika
    from rich.console import Console
    from rich.table import Table

    from retry.names import Names
    from retry.topology import declare_topology

    settings = _settings(ns)

    async def main() -> int:
        connection = await aio_pika.connect_robust(settings.amqp_url)
        try:
            queues = await declare_topology(
                connection,
                Names(settings.namespace),
                settings.retry_delays,
                settings.delivery_limit,
            )
        finally:
            await connection.close()
        table = Table(title=f"topology of namespace {settings.namespace!r} (declared)")
        for column in ("queue", "bound to", "arguments"):
            table.add_column(column)
        for queue in queues:
            args = ", ".join(f"{k}={v}" for k, v in queue.arguments.items())
            table.add_row(queue.name, queue.bound_to, args)
        Console().print(table)
        return 0

    return _run(main())


def _lines(path: str) -> Iterator[bytes]:
    stream = sys.stdin.buffer if path == "-" else Path(path).open("rb")  # noqa: SIM115
    with stream:
        for line in stream:
            line = line.strip()
            if line:
                yield line


def cmd_submit(ns: argparse.Namespace) -> int:
    import aio_pika
    import orjson
    from rich.progress import Progress

    from processor.producer import generate_payments, payment_message, request_message
    from retry.names import Names
    from retry.topology import declare_topology

    settings = _settings(ns)
    if ns.file is None and ns.count is None:
        raise SystemExit("payproc submit: give --count N or a FILE of JSON lines ('-' = stdin)")

    def messages() -> Iterator[aio_pika.Message]:
        if ns.count is not None:
            for payment in generate_payments(ns.count, ns.seed, ns.decline_rate, ns.reject_rate):
                yield payment_message(payment)
        else:
            for line in _lines(ns.file):
                message_id = None
                with contextlib.suppress(orjson.JSONDecodeError, AttributeError, TypeError):
                    message_id = str(orjson.loads(line).get("payment_id"))
                yield request_message(line, message_id)

    async def main() -> int:
        from processor.producer import publish_bodies

        connection = await aio_pika.connect_robust(settings.amqp_url)
        names = Names(settings.namespace)
        try:
            await declare_topology(
                connection, names, settings.retry_delays, settings.delivery_limit
            )
            with Progress(disable=ns.quiet) as progress:
                task = progress.add_task("publishing (confirmed)", total=ns.count)
                sent = await publish_bodies(
                    connection,
                    names,
                    messages(),
                    on_confirmed=lambda n: progress.advance(task, n),
                )
        finally:
            await connection.close()
        print(f"published {sent} payment requests to {names.exchange} (all confirmed)")
        return 0

    return _run(main())


def cmd_fake_gateway(ns: argparse.Namespace) -> int:
    from processor import fake_gateway

    return fake_gateway.run(ns)


def cmd_db(ns: argparse.Namespace) -> int:
    from processor.db import make_engine
    from processor.migrate import current_revision, describe, head_revision, upgrade

    settings = _settings(ns)

    async def main() -> int:
        engine = make_engine(settings.database_url)
        try:
            if ns.action == "upgrade":
                before = await current_revision(engine)
                await upgrade(engine)
                after = await current_revision(engine)
                print(f"{describe(engine)}: {before or 'empty'} -> {after}")
            else:
                current = await current_revision(engine)
                state = "up to date" if current == head_revision() else "behind"
                print(
                    f"{describe(engine)}: at {current or 'empty'}, head {head_revision()} ({state})"
                )
                return 0 if current == head_revision() else 1
        finally:
            await engine.dispose()
        return 0

    return _run(main())


def cmd_demo(ns: argparse.Namespace) -> int:
    from processor.demo import run_demo

    return run_demo(ns)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="payproc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--amqp-url", dest="amqp_url", help="default: $PAYPROC_AMQP_URL")
        p.add_argument("--namespace", help="default: $PAYPROC_NAMESPACE or 'payments'")

    worker = sub.add_parser("worker", help="consume and charge payment requests")
    common(worker)
    worker.add_argument("--database-url", dest="database_url")
    worker.add_argument("--gateway-url", dest="gateway_url")
    worker.add_argument("--prefetch", type=int)
    worker.add_argument(
        "--grace",
        type=float,
        default=25.0,
        help="seconds in-flight payments get at shutdown (default 25)",
    )
    worker.set_defaults(func=cmd_worker)

    topology = sub.add_parser("topology", help="declare exchanges and queues, print them")
    common(topology)
    topology.set_defaults(func=cmd_topology)

    submit = sub.add_parser("submit", help="publish payment requests (confirmed)")
    common(submit)
    submit.add_argument("file", nargs="?", help="file of JSON lines, '-' for stdin")
    submit.add_argument("--count", type=int, help="generate N valid payments instead")
    submit.add_argument("--seed", type=int)
    submit.add_argument("--decline-rate", type=float, default=0.0)
    submit.add_argument("--reject-rate", type=float, default=0.0)
    submit.add_argument("--quiet", action="store_true")
    submit.set_defaults(func=cmd_submit)

    from processor import fake_gateway

    gateway = sub.add_parser("fake-gateway", help="run the bundled fake payment gateway")
    fake_gateway.add_arguments(gateway)
    gateway.set_defaults(func=cmd_fake_gateway)

    db = sub.add_parser("db", help="database schema: upgrade (migrate) or show current")
    db.add_argument("action", choices=["upgrade", "current"])
    db.add_argument("--database-url", dest="database_url")
    db.set_defaults(func=cmd_db)

    demo = sub.add_parser("demo", help="run everything end to end and print a summary")
    demo.add_argument("--count", type=int, default=300)
    demo.add_argument("--keep", action="store_true", help="keep the demo namespace afterwards")
    demo.set_defaults(func=cmd_demo)

    # The admin API and its CLI live in dlq_admin; the worker itself never imports it.
    with contextlib.suppress(ImportError):
        from dlq_admin.cli import register as register_admin

        register_admin(sub)
    with contextlib.suppress(ImportError):
        from dlq_admin.reconcile_cli import register as register_reconcile

        register_reconcile(sub)
    # The gRPC front door is an optional extra; grpc is imported by the command itself.
    with contextlib.suppress(ImportError):
        from processor.grpc_api.cli import register as register_grpc

        register_grpc(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        func: Command = ns.func
        return func(ns)
    except (ConfigError, SchemaBehind) as exc:
        print(exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
