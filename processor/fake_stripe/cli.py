"""``python -m processor.fake_stripe``: serve the fake Stripe until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
from dataclasses import fields

from processor.fake_server import run_loop, serve_until_signal
from processor.fake_stripe.app import start_fake_stripe
from processor.fake_stripe.state import FakeStripeConfig

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--host``, ``--port`` and one flag per knob of ``FakeStripeConfig``."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    for knob in fields(FakeStripeConfig):
        kind = int if knob.name == "seed" else float
        parser.add_argument(
            "--" + knob.name.replace("_", "-"), type=kind, default=knob.default, help=knob.name
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m processor.fake_stripe",
        description="a local server speaking Stripe's PaymentIntents subset",
    )
    add_arguments(parser)
    ns = parser.parse_args(argv)
    config = FakeStripeConfig(**{f.name: getattr(ns, f.name) for f in fields(FakeStripeConfig)})
    return run_loop(
        lambda: serve_until_signal(
            "fake Stripe",
            lambda: start_fake_stripe(config, ns.host, ns.port),
            f"{ns.host}:{ns.port}",
        )
    )
