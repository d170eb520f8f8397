"""``payproc fake-gateway``: the fake gateway's flags and serving it until a signal."""

from __future__ import annotations

import argparse

from processor.fake_gateway import faults
from processor.fake_gateway.app import start_fake_gateway
from processor.fake_gateway.config import RATE_KNOBS, SECONDS_KNOBS, FakeGatewayConfig, knob_problem
from processor.fake_server import run_loop, serve_until_signal

__all__ = ["add_arguments", "config_from_args", "main", "run"]

_HELP = {
    "failure_rate": "probability 0..1 of a 503 before charging",
    "rate_limit_rate": "probability 0..1 of a 429 with Retry-After",
    "retry_after": "seconds announced in Retry-After (1)",
    "timeout_rate": "probability 0..1 of hanging before charging, then a 504",
    "charge_then_timeout_rate": "probability 0..1 of charging, then hanging before answering",
    "hang_seconds": "how long a timeout fault hangs (30)",
    "latency": "seconds added to every charge request (0)",
    "lookup_failure_rate": "probability 0..1 of a charge lookup answering 503",
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the fake gateway's flags to ``parser`` (``payproc fake-gateway``)."""
    defaults = FakeGatewayConfig()
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8081, help="port to bind, 0 = any (8081)")
    for name, help_text in _HELP.items():
        parser.add_argument(
            _flag(name), type=float, default=getattr(defaults, name), help=help_text
        )
    parser.add_argument(
        "--outage", action="store_true", help="start in an outage: every charge request gets a 503"
    )
    parser.add_argument(
        "--no-by-amount",
        action="store_true",
        help="turn off the deterministic outcomes by amount %% 1000",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="seed of the fault generator (reproducible chaos)"
    )
    faults.add_arguments(parser)


def config_from_args(ns: argparse.Namespace) -> FakeGatewayConfig:
    """Build the config from parsed flags; ``SystemExit`` with a one-line message if invalid."""
    for name in (*RATE_KNOBS, *SECONDS_KNOBS):
        value = getattr(ns, name)
        problem = knob_problem(name, value)
        if problem is not None:
            raise SystemExit(f"{_flag(name)} {problem}, got {value}")
    return FakeGatewayConfig(
        **{name: getattr(ns, name) for name in _HELP},
        outage=bool(ns.outage),
        by_amount=not ns.no_by_amount,
        seed=ns.seed,
        **faults.knobs_from_args(ns),
    )


def run(ns: argparse.Namespace) -> int:
    """Serve the fake gateway until SIGINT or SIGTERM; returns the exit status."""
    config = config_from_args(ns)
    where = f"{ns.host}:{ns.port}"
    return run_loop(
        lambda: serve_until_signal(
            "fake gateway", lambda: start_fake_gateway(config, ns.host, ns.port), where
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m processor.fake_gateway", description="payproc's fake payment gateway"
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
