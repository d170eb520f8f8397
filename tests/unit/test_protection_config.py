"""Gateway-protection settings: read from the environment, checked, turned into rules."""

from __future__ import annotations

import os

import pytest

from processor.config import ConfigError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PAYPROC_"):
            monkeypatch.delenv(name)


def test_the_rate_limit_is_off_by_default_and_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings().gateway_rate_limit is None
    monkeypatch.setenv("PAYPROC_GATEWAY_RATE_LIMIT", "150")
    assert load_settings().gateway_rate_limit == 150.0


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PAYPROC_GATEWAY_RATE_LIMIT", "0"),
        ("PAYPROC_GATEWAY_RATE_LIMIT", "fast"),
        ("PAYPROC_CIRCUIT_MAX_HOLD", "-1"),
        ("PAYPROC_CIRCUIT_MIN_MERCHANTS", "0"),
    ],
)
def test_a_bad_protection_setting_is_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        load_settings()


def test_breaker_rules_follow_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYPROC_CIRCUIT_THRESHOLD", "7")
    monkeypatch.setenv("PAYPROC_CIRCUIT_COOLDOWN", "40")
    monkeypatch.setenv("PAYPROC_CIRCUIT_MAX_COOLDOWN", "10")
    monkeypatch.setenv("PAYPROC_CIRCUIT_MAX_HOLD", "90")
    rules = load_settings().breaker_rules
    assert rules.min_payments == 7
    assert rules.max_hold == 90.0
    assert rules.cooldown == 40.0
    assert rules.max_cooldown == 40.0  # a cap below the base cool-down is raised to it
