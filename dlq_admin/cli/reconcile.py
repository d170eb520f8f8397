"""``payproc reconcile``: settle every ``unknown`` payment once, print what happened.

Each ``unknown`` payment is looked up at the gateway now (no back-off): charged ones become
``succeeded``, uncharged ones replayable ``retries_exhausted`` DLQ entries, and the rest stay
``unknown``. Exit status 0 when none is left unknown, 1 when some are (the gateway cannot say
yet: run it again later, or leave it to ``payproc admin``, which reconciles continuously).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from processor.config import Settings


def cmd_reconcile(ns: argparse.Namespace) -> int:
    from processor.cli_common import settings_from_args

    settings = settings_from_args(ns)
    report = asyncio.run(reconcile_once(settings))
    sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 1 if report["still_unknown"] else 0


async def reconcile_once(settings: Settings) -> dict[str, Any]:
    """One reconciler pass over every ``unknown`` payment; returns the report as a dict."""
    import aio_pika

    from dlq_admin.amqp import AmqpReplayPublisher
    from dlq_admin.truth_wiring import build_reconciler
    from processor.db import is_sqlite, make_engine
    from processor.migrate import ensure_current
    from retry.names import Names

    engine = make_engine(settings.database_url)
    try:
        await ensure_current(engine, auto_upgrade=is_sqlite(settings.database_url))
        connection = await aio_pika.connect_robust(settings.amqp_url)
        try:
            publisher = AmqpReplayPublisher(connection, Names(settings.namespace))
            await publisher.open()
            _, gateway, reconciler = build_reconciler(settings, engine, publisher)
            try:
                report = await reconciler.run_once(everything=True)
            finally:
                await gateway.aclose()
                await publisher.close()
        finally:
            await connection.close()
    finally:
        await engine.dispose()
    return report.as_dict()


def register(subparsers: Any) -> None:
    """Add ``reconcile`` to the ``payproc`` command line."""
    p = subparsers.add_parser(
        "reconcile", help="look up every payment whose outcome is unknown and settle it, once"
    )
    p.add_argument("--amqp-url", dest="amqp_url", help="default: $PAYPROC_AMQP_URL")
    p.add_argument("--namespace", help="default: $PAYPROC_NAMESPACE or 'payments'")
    p.add_argument("--database-url", dest="database_url")
    p.add_argument("--gateway-url", dest="gateway_url")
    p.set_defaults(func=cmd_reconcile)
