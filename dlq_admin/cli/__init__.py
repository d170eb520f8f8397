"""``payproc admin`` (serve the admin API + DLQ ingest) and ``payproc dlq ...`` (talk to it).

``processor.cli`` calls ``register(subparsers)`` for every ``payproc`` command line, so this
module imports only the standard library at the top; httpx, rich and the service are imported
by the command that needs them, where an ``ImportError`` surfaces loudly.

``payproc dlq`` reads the URL from ``--url`` / ``$PAYPROC_ADMIN_URL`` (default
``http://127.0.0.1:8080``) and the token from ``--token`` / ``$PAYPROC_ADMIN_TOKEN``; ``--json``
prints the API's JSON unchanged for scripts. Exit status: 0 ok, 1 the API refused or failed,
2 bad usage or configuration.

``serve`` runs ``payproc admin``; ``http`` is the API client and console output of
``payproc dlq``; ``browse``, ``actions`` and ``jobs`` (replay jobs, ``--follow``) hold its
commands; this module registers them.
"""

from __future__ import annotations

import argparse
from typing import Any

from dlq_admin.cli.actions import cmd_audit, cmd_discard, cmd_replay
from dlq_admin.cli.browse import cmd_groups, cmd_list, cmd_show, cmd_stats
from dlq_admin.cli.http import DEFAULT_URL, run_dlq
from dlq_admin.cli.jobs import add_job_commands, add_replay_options
from dlq_admin.cli.serve import cmd_admin

__all__ = ["register"]

REASONS = ("retries_exhausted", "gateway_rejected", "invalid_message", "poison")
STATUSES = ("parked", "replaying", "replayed", "discarded")


def register(subparsers: Any) -> None:
    """Add ``admin`` and ``dlq`` to the ``payproc`` command line."""
    admin = subparsers.add_parser(
        "admin", help="serve the admin API and index the DLQ (needs PAYPROC_ADMIN_TOKEN)"
    )
    admin.add_argument("--amqp-url", dest="amqp_url", help="default: $PAYPROC_AMQP_URL")
    admin.add_argument("--namespace", help="default: $PAYPROC_NAMESPACE or 'payments'")
    admin.add_argument("--database-url", dest="database_url")
    admin.add_argument(
        "--bind", help="host:port (default $PAYPROC_ADMIN_BIND or 127.0.0.1:8080; port 0 = any)"
    )
    admin.add_argument(
        "--no-ingest",
        action="store_true",
        help="serve the API only; parked messages keep waiting in N.dlq",
    )
    admin.set_defaults(func=cmd_admin)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url", help=f"admin API base URL (default $PAYPROC_ADMIN_URL or {DEFAULT_URL})"
    )
    common.add_argument("--token", help="bearer token (default $PAYPROC_ADMIN_TOKEN)")
    common.add_argument("--json", action="store_true", help="print the API's JSON (for scripts)")

    dlq = subparsers.add_parser("dlq", help="browse, replay and discard parked payments")
    sub = dlq.add_subparsers(dest="dlq_command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", parents=[common], help="list entries, newest first")
    p.add_argument("--reason", choices=REASONS)
    p.add_argument("--status", choices=STATUSES)
    p.add_argument("--payment-id", dest="payment_id")
    p.add_argument("--merchant-id", dest="merchant_id")
    p.add_argument("--since", help="ISO time: dead-lettered at or after")
    p.add_argument("--until", help="ISO time: dead-lettered before")
    p.add_argument("--group", help="a fingerprint from 'payproc dlq groups'")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--cursor", help="next_cursor of the previous page")
    p.set_defaults(func=run_dlq(cmd_list))

    p = sub.add_parser("show", parents=[common], help="one entry whole, with history")
    p.add_argument("id")
    p.set_defaults(func=run_dlq(cmd_show))

    p = sub.add_parser("stats", parents=[common], help="counts, oldest age, queue backlog")
    p.set_defaults(func=run_dlq(cmd_stats))

    p = sub.add_parser("groups", parents=[common], help="entries grouped by failure")
    p.add_argument("--status", choices=STATUSES, default="parked")
    p.add_argument("--reason", choices=REASONS)
    p.add_argument("--limit", type=int, default=100)
    p.set_defaults(func=run_dlq(cmd_groups))

    for name, helptext in (
        ("replay", "republish entries with a fresh attempt budget"),
        ("discard", "mark entries discarded (kept, never deleted)"),
    ):
        p = sub.add_parser(name, parents=[common], help=helptext)
        p.add_argument("ids", nargs="*", metavar="ID", help="entry ids")
        p.add_argument("--reason", choices=REASONS, help="every parked entry with this reason")
        p.add_argument("--group", help="every parked entry with this fingerprint")
        p.add_argument("--limit", type=int, help="at most this many entries (bulk; default 100)")
        p.add_argument("--dry-run", action="store_true", help="only show what would happen")
        if name == "replay":
            p.add_argument("--payload", help="edited request body (JSON object) for one entry")
            p.add_argument("--payload-file", dest="payload_file", help="...read from a file")
            add_replay_options(p)
            p.set_defaults(func=run_dlq(cmd_replay))
        else:
            p.add_argument("--note", help="why (kept in the audit log)")
            p.set_defaults(func=run_dlq(cmd_discard))

    add_job_commands(sub, common)

    p = sub.add_parser("audit", parents=[common], help="the audit log, newest first")
    p.add_argument("--actor")
    p.add_argument("--action")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=run_dlq(cmd_audit))
