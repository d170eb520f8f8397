"""``payproc`` command line: worker, topology, submit, fake-gateway, db, demo, admin, dlq, grpc.

Every failure a user can fix ends in one line on stderr, not a traceback: status 2 for a bad
setting or a database schema behind the code, 1 for a broker or database that could not be
reached (after waiting ``PAYPROC_STARTUP_TIMEOUT`` / ``--wait`` for it, see
``processor.startup``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from processor.cli_common import add_wait_flag
from processor.cli_common import run as _run
from processor.cli_common import settings_from_args as _settings
from processor.config import ConfigError
from processor.migrate import SchemaBehind
from processor.ports import Gateway
from processor.startup import Unreachable

Command = Callable[[argparse.Namespace], int]


def _install_stop(stop: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop)


def cmd_worker(ns: argparse.Namespace) -> int:
    from processor.worker import Worker, WorkerOptions

    settings = _settings(ns)

    async def main() -> int:
        options = WorkerOptions(grace_seconds=ns.grace, wrap_gateway=ns.wrap_gateway)
        worker = Worker(settings, options)
        running = asyncio.current_task()
        assert running is not None

        def stop() -> None:
            # Until it is ready the worker may be waiting for the broker or the database
            # (PAYPROC_STARTUP_TIMEOUT): a stop ends that wait instead of sitting it out.
            if worker.ready.is_set():
                worker.stop()
            else:
                running.cancel()

        _install_stop(stop)
        try:
            await worker.run()
        except asyncio.CancelledError:
            if worker.ready.is_set():
                raise
            print("payproc worker: stopped during start-up", file=sys.stderr)
        return 0

    return _run(main())


def cmd_topology(ns: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from processor.startup import reach_broker
    from retry.names import Names
    from retry.topology import declare_topology

    settings = _settings(ns)

    async def main() -> int:
        connection = await reach_broker(
            settings.amqp_url, settings.startup_timeout, connection_name="payproc-topology"
        )
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
        from processor.startup import reach_broker

        connection = await reach_broker(
            settings.amqp_url, settings.startup_timeout, connection_name="payproc-submit"
        )
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
        from processor.startup import reach_database

        engine = make_engine(settings.database_url)
        try:
            await reach_database(engine, settings.database_url, settings.startup_timeout)
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
        add_wait_flag(p)

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
    add_wait_flag(db)
    db.set_defaults(func=cmd_db)

    demo = sub.add_parser("demo", help="run everything end to end and print a summary")
    demo.add_argument("--count", type=int, default=300)
    demo.add_argument("--keep", action="store_true", help="keep the demo namespace afterwards")
    demo.add_argument(
        "--gateway",
        choices=["payproc", "stripe"],
        default="payproc",
        help="stripe: the worker speaks Stripe's API to a local Stripe-speaking server",
    )
    demo.set_defaults(func=cmd_demo)

    # The admin API and its CLI live in dlq_admin; the worker itself never imports it. Both
    # modules import only the standard library at the top (their commands import the rest),
    # so an ImportError here is a broken installation and must surface.
    from dlq_admin.cli import register as register_admin
    from processor.grpc_api.cli import register as register_grpc

    register_admin(sub)
    register_grpc(sub)
    return parser


def main(
    argv: list[str] | None = None,
    *,
    wrap_gateway: Callable[[Gateway], Gateway] | None = None,
) -> int:
    """Run one ``payproc`` command; ``wrap_gateway`` is passed to the worker (tests inject
    faults with it, see ``WorkerOptions``)."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    ns.wrap_gateway = wrap_gateway
    try:
        func: Command = ns.func
        return func(ns)
    except (ConfigError, SchemaBehind) as exc:
        print(exc, file=sys.stderr)
        return 2
    except Unreachable as exc:
        print(f"payproc {ns.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
