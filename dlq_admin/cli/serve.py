"""``payproc admin``: serve the admin API and index the DLQ (the service is imported here,
not at the top of the CLI package)."""

from __future__ import annotations

import argparse


def cmd_admin(ns: argparse.Namespace) -> int:
    from dlq_admin.runtime import admin_tokens, parse_bind, serve
    from processor.cli_common import run, settings_from_args

    settings = settings_from_args(ns)
    admin_tokens(settings)  # refuse to start without a token, before anything else
    parse_bind(ns.bind or settings.admin_bind)
    return run(serve(settings, bind=ns.bind, ingest=not ns.no_ingest))
