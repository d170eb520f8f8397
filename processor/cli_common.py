"""What every ``payproc`` command line shares: settings (flags over the environment) and the
event loop.

A command's flags override the ``PAYPROC_*`` environment by name: an argparse option whose
``dest`` is a ``Settings`` field (``--amqp-url`` -> ``amqp_url``, ``--wait`` ->
``startup_timeout``) and that the user gave replaces that field. Every front end calls
``settings_from_args`` instead of copying the override loop, so a new flag needs no new code
here, and the token values and log set-up are the same everywhere.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Coroutine
from typing import Any

from processor.config import Settings, load_settings
from processor.logs import register_secret, setup_logging


def add_wait_flag(parser: argparse.ArgumentParser) -> None:
    """``--wait SECONDS`` (``startup_timeout``): how long the command waits at start for a
    broker or database that does not answer yet."""
    parser.add_argument(
        "--wait",
        dest="startup_timeout",
        type=float,
        metavar="SECONDS",
        help="wait this long for a broker or database that does not answer yet "
        "(default: $PAYPROC_STARTUP_TIMEOUT or 30; 0 = give up at once)",
    )


def overrides_from_args(ns: argparse.Namespace) -> dict[str, object]:
    """The ``Settings`` fields the user set on the command line (``None`` = not given)."""
    return {
        name: value
        for name in Settings.model_fields
        if (value := getattr(ns, name, None)) is not None
    }


def settings_from_args(ns: argparse.Namespace) -> Settings:
    """Settings from the environment with the command's flags on top, secrets registered for
    masking and logging set up; ``ConfigError`` (one line) on a bad value."""
    settings = load_settings(**overrides_from_args(ns))
    register_secret(settings.admin_token)
    register_secret(settings.admin_tokens)
    setup_logging(settings.log_format, settings.log_level)
    return settings


def run(coro: Coroutine[Any, Any, int]) -> int:
    """Run a command's coroutine on uvloop (the asyncio loop where uvloop is missing)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        return asyncio.run(coro)
    return int(uvloop.run(coro))
