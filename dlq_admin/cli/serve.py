"""``payproc admin``: serve the admin API and index the DLQ (the service is imported here,
not at the top of the CLI package)."""

from __future__ import annotations

import argparse


def cmd_admin(ns: argparse.Namespace) -> int:
    from dlq_admin.runtime import admin_tokens, parse_bind, serve
    from processor.config import load_settings
    from processor.logs import register_secret, setup_logging

    overrides: dict[str, object] = {}
    for name in ("amqp_url", "database_url", "namespace"):
        value = getattr(ns, name, None)
        if value is not None:
            overrides[name] = value
    settings = load_settings(**overrides)
    register_secret(settings.admin_token)
    register_secret(settings.admin_tokens)
    setup_logging(settings.log_format, settings.log_level)
    admin_tokens(settings)  # refuse to start without a token, before anything else
    parse_bind(ns.bind or settings.admin_bind)

    coro = serve(settings, bind=ns.bind, ingest=not ns.no_ingest)
    try:
        import uvloop

        return int(uvloop.run(coro))
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        import asyncio

        return asyncio.run(coro)
