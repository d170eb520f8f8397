"""``payproc grpc``: serve the synchronous gRPC front door (needs the ``grpc`` extra).

``processor.cli`` calls ``register(subparsers)`` when it builds the command line, so this
module imports only the standard library at the top: ``payproc --help`` works without grpcio
installed, and ``payproc grpc`` says which extra is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from typing import Any

DEFAULT_BIND = "127.0.0.1:50051"


def cmd_grpc(ns: argparse.Namespace) -> int:
    try:
        import grpc  # noqa: F401
        import grpc_tools  # noqa: F401
    except ImportError:
        print(
            "payproc grpc needs the optional 'grpc' extra: pip install 'payproc[grpc]'",
            file=sys.stderr,
        )
        return 2
    from processor.cli_common import run, settings_from_args
    from processor.grpc_api.service import ServiceOptions, serve

    settings = settings_from_args(ns)
    if not ns.default_timeout > 0:
        raise SystemExit("payproc grpc: --default-timeout must be positive seconds")

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        try:
            return await serve(
                settings,
                ns.bind,
                options=ServiceOptions(default_timeout=ns.default_timeout),
                stop=stop,
                grace=ns.grace,
            )
        except OSError as exc:
            print(f"payproc grpc: {exc}", file=sys.stderr)
            return 1

    return run(main())


def register(subparsers: Any) -> None:
    """Add ``grpc`` to the ``payproc`` command line."""
    from processor.cli_common import add_wait_flag  # no grpcio needed: --help works without

    p = subparsers.add_parser(
        "grpc", help="serve the synchronous gRPC Charge/GetPayment API (needs the grpc extra)"
    )
    p.add_argument("--amqp-url", dest="amqp_url", help="default: $PAYPROC_AMQP_URL")
    p.add_argument("--namespace", help="default: $PAYPROC_NAMESPACE or 'payments'")
    p.add_argument("--database-url", dest="database_url", help="for GetPayment")
    add_wait_flag(p)
    p.add_argument(
        "--bind",
        default=os.environ.get("PAYPROC_GRPC_BIND", DEFAULT_BIND),
        help=f"host:port (default $PAYPROC_GRPC_BIND or {DEFAULT_BIND}; port 0 = any)",
    )
    p.add_argument(
        "--default-timeout",
        dest="default_timeout",
        type=float,
        default=30.0,
        help="seconds a Charge without a deadline waits for its result (default 30)",
    )
    p.add_argument(
        "--grace",
        type=float,
        default=10.0,
        help="seconds running calls get at shutdown (default 10)",
    )
    p.set_defaults(func=cmd_grpc)
