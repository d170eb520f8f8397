"""Settings fail fast with one line naming the variable; log lines never carry PANs or secrets."""

from __future__ import annotations

import io
import logging
import os

import orjson
import pytest

from processor import cli, logs
from processor.config import ConfigError, Settings, load_settings
from processor.errors import ProcessorError

PAN = "4111111111111111"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start every test from an environment without PAYPROC_ variables."""
    for name in list(os.environ):
        if name.startswith("PAYPROC_"):
            monkeypatch.delenv(name)


# ---- configuration --------------------------------------------------------------------------


def test_defaults_match_the_spec() -> None:
    """With no environment the documented defaults apply."""
    settings = load_settings()
    assert settings.namespace == "payments"
    assert settings.prefetch == 100
    assert settings.retry_delays == (1.0, 5.0, 30.0, 120.0, 600.0)
    assert settings.max_attempts == 6
    assert settings.gateway_timeout == 5.0
    assert settings.gateway_url == "http://127.0.0.1:8081"


def test_environment_values_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """PAYPROC_ variables override defaults, including sub-second retry ladders."""
    monkeypatch.setenv("PAYPROC_RETRY_DELAYS", "0.1,0.25,1")
    monkeypatch.setenv("PAYPROC_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("PAYPROC_GATEWAY_URL", "https://gw.example/")
    settings = load_settings()
    assert settings.policy.delays == (0.1, 0.25, 1.0)
    assert settings.policy.max_attempts == 3
    assert settings.gateway_url == "https://gw.example"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PAYPROC_PREFETCH", "abc"),
        ("PAYPROC_PREFETCH", "0"),
        ("PAYPROC_RETRY_DELAYS", "5,1"),
        ("PAYPROC_RETRY_DELAYS", "1,x"),
        ("PAYPROC_RETRY_DELAYS", "nan"),
        ("PAYPROC_GATEWAY_URL", "ftp://x"),
        ("PAYPROC_NAMESPACE", "my payments"),
        ("PAYPROC_MAX_ATTEMPTS", "0"),
        ("PAYPROC_GATEWAY_TIMEOUT", "-1"),
        ("PAYPROC_AMQP_URL", "http://broker"),
        ("PAYPROC_DATABASE_URL", "mysql://db"),
    ],
)
def test_bad_setting_raises_a_one_line_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    """Each bad value stops start-up with a single line that names the PAYPROC_ variable."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert variable in message
    assert "\n" not in message
    assert message.startswith("payproc: invalid setting")


def test_config_error_is_an_ordinary_processor_error() -> None:
    """ConfigError is caught as an error of the processor package, not a SystemExit that a
    library caller could not tell from a real exit."""
    with pytest.raises(ProcessorError) as caught:
        load_settings(prefetch="lots")
    assert isinstance(caught.value, ConfigError)
    assert not isinstance(caught.value, SystemExit)


def test_the_cli_turns_a_bad_setting_into_one_line_and_exit_status_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``payproc worker`` with a bad setting prints one line naming it and exits with 2."""
    monkeypatch.setenv("PAYPROC_PREFETCH", "lots")
    assert cli.main(["worker"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("payproc: invalid setting PAYPROC_PREFETCH")


def test_admin_token_is_not_shown_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    """The admin token never appears when settings are printed or logged."""
    monkeypatch.setenv("PAYPROC_ADMIN_TOKEN", "s3cret-token")
    assert "s3cret-token" not in repr(load_settings())


def test_lease_outlasts_the_gateway_timeout() -> None:
    """A claimed payment's lease is longer than the gateway call it protects."""
    settings = Settings(gateway_timeout=7)
    assert settings.lease_seconds > settings.gateway_timeout


# ---- logs ------------------------------------------------------------------------------------


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """A private secret registry so tests do not leak into each other."""
    registry: set[str] = set()
    monkeypatch.setattr(logs, "_secrets", registry)
    return registry


def capture(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"payproc.test.{id(stream)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream


def test_json_lines_are_valid_json_with_extras(secrets: set[str]) -> None:
    """A JSON log line parses and carries level, logger, event and extra fields."""
    logger, stream = capture(logs.JsonFormatter())
    logger.info("charged", extra={"payment_id": "p-1", "attempt": 2})
    line = orjson.loads(stream.getvalue())
    assert (line["level"], line["event"], line["payment_id"], line["attempt"]) == (
        "info",
        "charged",
        "p-1",
        2,
    )
    assert line["logger"].startswith("payproc.test")


@pytest.mark.parametrize("formatter", [logs.JsonFormatter(), logs.TextFormatter()])
def test_card_numbers_are_redacted_in_message_extras_and_tracebacks(
    secrets: set[str], formatter: logging.Formatter
) -> None:
    """A PAN in the message, an extra field or an exception never reaches the log output."""
    logger, stream = capture(formatter)
    logger.warning("bad card %s", PAN, extra={"description": "card 4111 1111 1111 1111"})
    try:
        raise ValueError(f"gateway echoed {PAN}")
    except ValueError:
        logger.exception("crash")
    output = stream.getvalue()
    assert "[REDACTED-PAN]" in output
    assert "1111 1111" not in output
    assert PAN not in output


@pytest.mark.parametrize("formatter", [logs.JsonFormatter(), logs.TextFormatter()])
@pytest.mark.parametrize("secret", ["tok_abc123", 'quote"and\\backslash'])
def test_registered_secrets_are_redacted(
    secrets: set[str], formatter: logging.Formatter, secret: str
) -> None:
    """A registered secret is masked in both formats, even where JSON escapes its characters."""
    logs.register_secret(secret)
    logger, stream = capture(formatter)
    logger.info("token is %s", secret, extra={"authorization": f"Bearer {secret}"})
    output = stream.getvalue()
    assert output.count("[REDACTED]") == 2
    assert "tok_abc123" not in output
    assert "backslash" not in output


def test_empty_secret_is_ignored(secrets: set[str]) -> None:
    """Registering no token masks nothing (an empty string would mask every gap)."""
    logs.register_secret(None)
    logs.register_secret("")
    assert secrets == set()
    assert logs.scrub("plain text") == "plain text"
