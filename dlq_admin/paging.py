"""Opaque keyset cursors and a token bucket: small pure helpers of the service layer."""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from dlq_admin.errors import FieldProblem, InvalidInput


@dataclass(frozen=True, slots=True)
class EntryCursor:
    """Position after the last entry of a page: ``(dead_lettered_at, id)``, newest first."""

    at: datetime
    id: str


def encode_entry_cursor(at: datetime, entry_id: str) -> str:
    raw = orjson.dumps([at.astimezone(UTC).isoformat(), entry_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(cursor: str) -> bytes:
    padded = cursor + "=" * (-len(cursor) % 4)
    return base64.urlsafe_b64decode(padded.encode("ascii"))


def _bad_cursor() -> InvalidInput:
    return InvalidInput(
        "cursor: not a cursor returned by this API (pass next_cursor unchanged)",
        [FieldProblem(("query", "cursor"), "invalid cursor", "cursor_invalid")],
    )


def decode_entry_cursor(cursor: str) -> EntryCursor:
    try:
        value = orjson.loads(_unb64(cursor))
        at_text, entry_id = value
        if not isinstance(at_text, str) or not isinstance(entry_id, str):
            raise ValueError(cursor)
        at = datetime.fromisoformat(at_text)
        if at.tzinfo is None:
            raise ValueError(cursor)
        return EntryCursor(at.astimezone(UTC), entry_id)
    except (ValueError, TypeError, UnicodeError, binascii.Error, OverflowError):
        raise _bad_cursor() from None


def encode_id_cursor(value: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([value])).decode().rstrip("=")


def decode_id_cursor(cursor: str) -> int:
    try:
        value = orjson.loads(_unb64(cursor))
        (number,) = value
        if not isinstance(number, int) or isinstance(number, bool) or not 0 < number < 2**62:
            raise ValueError(cursor)
        return number
    except (ValueError, TypeError, UnicodeError, binascii.Error):
        raise _bad_cursor() from None


_EPSILON = 1e-9
_MIN_SLEEP = 1e-4


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; ``acquire`` waits for one,
    ``take`` for a batch of up to ``burst``.

    Shared by every bulk replay of one admin process, so two concurrent bulk calls together
    still stay under the rate the gateway was promised.
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate / 10)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._stamp = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    async def acquire(self) -> None:
        async with self._lock:
            self._refill()
            while self._tokens < 1 - _EPSILON:  # float refills land just under 1.0
                await self._sleep(max((1 - self._tokens) / self.rate, _MIN_SLEEP))
                self._refill()
            self._tokens = max(self._tokens - 1, 0.0)

    async def take(self, wanted: int) -> int:
        """Wait for tokens and take up to ``wanted`` of them at once; returns how many.

        Takes ``min(wanted, burst)`` (at least 1), waiting until that many are saved up, so
        a caller pacing a batch wakes up once per burst instead of once per message while
        the long-run rate stays ``rate``. Callers loop until they have all they need.
        """
        if wanted <= 0:
            return 0
        want = max(1, min(wanted, int(self.burst + _EPSILON)))
        async with self._lock:
            self._refill()
            while self._tokens < want - _EPSILON:
                await self._sleep(max((want - self._tokens) / self.rate, _MIN_SLEEP))
                self._refill()
            self._tokens = max(self._tokens - want, 0.0)
        return want
