"""Pure parts of the entry points: masking URLs, and flags over the environment."""

from __future__ import annotations

import argparse

import pytest

from processor.cli import build_parser
from processor.cli_common import overrides_from_args, settings_from_args
from processor.startup import mask_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:***@127.0.0.1:5672/"),
        ("postgresql://app:p%40ss@db:5432/payments", "postgresql://app:***@db:5432/payments"),
        ("amqps://u:pw@[::1]:5671/vhost", "amqps://u:***@[::1]:5671/vhost"),
        ("http://127.0.0.1:8081", "http://127.0.0.1:8081"),
        ("postgresql://postgres@127.0.0.1/postgres", "postgresql://postgres@127.0.0.1/postgres"),
        ("sqlite:///./payproc.db", "sqlite:///./payproc.db"),
    ],
)
def test_mask_url_hides_the_password_only(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_a_password_with_an_at_sign_is_masked_whole() -> None:
    assert mask_url("amqp://u:a@b@host:5672/") == "amqp://u:***@host:5672/"


def test_flags_override_the_environment_and_absent_flags_do_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    logging_set_up: list[tuple[str, str]] = []
    monkeypatch.setattr(
        "processor.cli_common.setup_logging", lambda *args: logging_set_up.append(args)
    )
    monkeypatch.setenv("PAYPROC_NAMESPACE", "from-env")
    monkeypatch.setenv("PAYPROC_PREFETCH", "7")
    monkeypatch.setenv("PAYPROC_STARTUP_TIMEOUT", "12")
    ns = build_parser().parse_args(["worker", "--prefetch", "40", "--wait", "0"])
    assert overrides_from_args(ns) == {"prefetch": 40, "startup_timeout": 0.0}
    settings = settings_from_args(ns)
    assert (settings.namespace, settings.prefetch, settings.startup_timeout) == ("from-env", 40, 0)
    assert logging_set_up == [(settings.log_format, settings.log_level)]


def test_options_that_are_not_settings_are_ignored() -> None:
    ns = argparse.Namespace(grace=5.0, bind="127.0.0.1:0", amqp_url=None, count=3)
    assert overrides_from_args(ns) == {}
