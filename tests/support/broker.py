"""Reaching the real broker from tests: skip locally when it is absent, fail in CI."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import pytest

AMQP_URL = os.environ.get("PAYPROC_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
PG_ADMIN_URL = os.environ.get(
    "PAYPROC_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or default_port), 2
        ):
            return True
    except OSError:
        return False


def in_ci() -> bool:
    """``CI=true`` (or 1/yes): a missing service or tool fails the run instead of skipping."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(url: str, default_port: int, what: str) -> None:
    """In CI a missing service fails the run loudly; on a laptop the test is skipped."""
    if reachable(url, default_port):
        return
    message = f"{what} is not reachable at {url}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: never skipped)", pytrace=False)
    pytest.skip(message)
