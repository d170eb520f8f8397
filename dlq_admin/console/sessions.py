"""Console sign-in sessions, held server-side.

Signing in with an admin token creates a ``Session`` in this process: who signed in (the
token's name and role, never the token), a CSRF token and an expiry. The browser holds only
the session id and an HMAC of it under a key that never leaves the process, so a cookie
cannot be forged or altered, and it says nothing about the token. Sessions live in memory:
restarting ``payproc admin`` signs everyone out, which is the safe failure.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from dlq_admin.auth import Principal
from schemas.dlq import Role

COOKIE = "payproc_console"
LOGIN_COOKIE = "payproc_console_login"
"""The sign-in form's CSRF cookie (double submit: the form carries the same value)."""


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    """How the console's cookies are issued: ``secure`` over HTTPS, ``ttl`` in seconds."""

    secure: bool = False
    ttl: float = 8 * 3600.0
    refresh_ms: int = 5000
    """How often the pages' script refreshes counts and job progress."""


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    principal: Principal
    csrf: str
    expires_at: float

    @property
    def operator(self) -> bool:
        return self.principal.may(Role.OPERATOR)


class SessionStore:
    """Creates, finds and ends sessions; ``clock`` is monotonic seconds (a test moves it)."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._key = secrets.token_bytes(32)
        self._sessions: dict[str, Session] = {}

    def _sign(self, session_id: str) -> str:
        mac = hmac.new(self._key, session_id.encode(), hashlib.sha256).hexdigest()
        return f"{session_id}.{mac}"

    def create(self, principal: Principal) -> tuple[Session, str]:
        """A new session and the cookie value that names it."""
        self._sweep()
        session = Session(
            id=secrets.token_urlsafe(24),
            principal=principal,
            csrf=secrets.token_urlsafe(24),
            expires_at=self.clock() + self.ttl,
        )
        self._sessions[session.id] = session
        return session, self._sign(session.id)

    def find(self, cookie: str | None) -> Session | None:
        """The live session a cookie names; None if unsigned, unknown or expired."""
        if not cookie or "." not in cookie:
            return None
        session_id = cookie.rsplit(".", 1)[0]
        if not hmac.compare_digest(self._sign(session_id), cookie):
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if session.expires_at <= self.clock():
            del self._sessions[session_id]
            return None
        return session

    def end(self, session: Session) -> None:
        self._sessions.pop(session.id, None)

    def _sweep(self) -> None:
        now = self.clock()
        for dead in [k for k, s in self._sessions.items() if s.expires_at <= now]:
            del self._sessions[dead]


def csrf_matches(expected: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(expected.encode(), (presented or "").encode())
