"""Console sign-in sessions, held in the admin's database so every replica shares them.

Signing in with an admin token creates a session: who signed in (the token's name and role,
never the token), a CSRF token and an expiry in UTC wall-clock time. The browser's cookie
carries a random 256-bit session id; the database keeps only its SHA-256, so a copy of the
database yields no usable cookie, and the random id is itself the proof (no signing key to
share between replicas). A session therefore works on every admin of the namespace, survives
restarts and deploys, and signing out deletes it everywhere.

Each use re-checks the session against this admin's token configuration
(``Authenticator.session_proof``): a session whose token was removed, rotated or given another
role is refused and its user signs in again. Expired rows are deleted when met and swept at
every sign-in. The rows are behind ``SessionRows`` (SQL in ``session_rows``); this module
imports no web framework and no database library.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from dlq_admin.auth import Authenticator, Principal
from dlq_admin.errors import Unauthenticated
from schemas.dlq import Role
from schemas.tables import utcnow

COOKIE = "payproc_console"
LOGIN_COOKIE = "payproc_console_login"
"""The sign-in form's CSRF cookie (double submit: the form carries the same value)."""

_ID_BYTES = 32
_ID = re.compile(r"[A-Za-z0-9_-]{43}")
"""A session id as the cookie carries it: ``secrets.token_urlsafe(32)``."""


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    """How the console's cookies are issued: ``secure`` over HTTPS, ``ttl`` in seconds."""

    secure: bool = False
    ttl: float = 8 * 3600.0
    refresh_ms: int = 5000
    """How often the pages' script refreshes counts and job progress."""


@dataclass(frozen=True, slots=True)
class StoredSession:
    """A session as the database holds it: neither the session id nor the token."""

    id_hash: str
    token_name: str
    role: str
    token_proof: str
    csrf: str
    created_at: datetime
    expires_at: datetime


class SessionRows(Protocol):
    """The session rows of one namespace."""

    async def add_session(self, row: StoredSession) -> None: ...

    async def get_session(self, id_hash: str) -> StoredSession | None: ...

    async def delete_session(self, id_hash: str) -> None: ...

    async def delete_expired_sessions(self, now: datetime) -> int:
        """Delete the sessions that expired at ``now``; how many."""
        ...


@dataclass(frozen=True, slots=True)
class Session:
    id_hash: str
    principal: Principal
    csrf: str
    expires_at: datetime

    @property
    def operator(self) -> bool:
        return self.principal.may(Role.OPERATOR)


def id_hash(session_id: str) -> str:
    """What the database knows a session by: the hex SHA-256 of its id."""
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    """Creates, finds and ends sessions; ``clock`` is aware UTC now (a test moves it)."""

    def __init__(
        self,
        rows: SessionRows,
        tokens: Authenticator,
        ttl: float,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.rows = rows
        self.tokens = tokens
        self.ttl = ttl
        self.clock = clock

    async def create(self, principal: Principal) -> tuple[Session, str]:
        """A new session and the cookie value that names it (its id); expired sessions of
        the namespace are swept first. ``Unauthenticated`` if ``principal`` is not (or no
        longer) a configured token."""
        now = self.clock()
        await self.rows.delete_expired_sessions(now)
        session_id = secrets.token_urlsafe(_ID_BYTES)
        proof = self.tokens.session_proof(principal, session_id)
        if proof is None:
            raise Unauthenticated("token no longer configured")
        row = StoredSession(
            id_hash=id_hash(session_id),
            token_name=principal.name,
            role=principal.role.value,
            token_proof=proof,
            csrf=secrets.token_urlsafe(24),
            created_at=now,
            expires_at=now + timedelta(seconds=self.ttl),
        )
        await self.rows.add_session(row)
        return Session(row.id_hash, principal, row.csrf, row.expires_at), session_id

    async def find(self, cookie: str | None) -> Session | None:
        """The live session a cookie names; None if malformed, unknown or expired, or if
        its token is no longer configured as it was at sign-in."""
        if not cookie or not _ID.fullmatch(cookie):
            return None
        key = id_hash(cookie)
        row = await self.rows.get_session(key)
        if row is None:
            return None
        if row.expires_at <= self.clock():
            await self.rows.delete_session(key)
            return None
        try:
            principal = Principal(row.token_name, Role(row.role))
        except ValueError:
            return None
        proof = self.tokens.session_proof(principal, cookie)
        if proof is None or not hmac.compare_digest(proof, row.token_proof):
            return None
        return Session(key, principal, row.csrf, row.expires_at)

    async def end(self, session: Session) -> None:
        """Sign out: the row is deleted, so no replica accepts the cookie any more."""
        await self.rows.delete_session(session.id_hash)


def csrf_matches(expected: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(expected.encode(), (presented or "").encode())
