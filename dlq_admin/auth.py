"""Bearer-token authentication with two roles, as plain code (no web imports).

Tokens are named (``alice:operator:<token>``) so the audit log can say *who* did something
without ever storing the token. Only SHA-256 digests of the tokens are kept; a presented token
is hashed and compared with ``hmac.compare_digest`` against *every* configured digest, with no
early exit, so neither the position of a match nor a common prefix shows in the timing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass

from dlq_admin.errors import Forbidden, TokenConfigError, Unauthenticated
from schemas.dlq import Role

_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1}
DEFAULT_TOKEN_NAME = "admin"  # noqa: S105 - a name for the audit log, not a secret


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's name and role (never the token itself)."""

    name: str
    role: Role

    def may(self, needed: Role) -> bool:
        return _RANK[self.role] >= _RANK[needed]


@dataclass(frozen=True, slots=True)
class ConfiguredToken:
    name: str
    role: Role
    secret: str


@dataclass(frozen=True, slots=True)
class _Digest:
    principal: Principal
    digest: bytes


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def parse_tokens(spec: str) -> list[ConfiguredToken]:
    """Parse ``PAYPROC_ADMIN_TOKENS``: ``name:role:token`` items separated by commas/newlines."""
    tokens: list[ConfiguredToken] = []
    items = [item.strip() for item in re.split(r"[,\n]", spec)]
    for position, item in enumerate((i for i in items if i), start=1):
        parts = item.split(":", 2)
        if len(parts) != 3:
            raise TokenConfigError(f"item {position} is not name:role:token")
        name, role, secret = (p.strip() for p in parts)
        if not _NAME.match(name):
            raise TokenConfigError(f"item {position}: name must match {_NAME.pattern}")
        if role not in (Role.VIEWER.value, Role.OPERATOR.value):
            raise TokenConfigError(f"item {position} ({name}): role must be viewer or operator")
        if not secret:
            raise TokenConfigError(f"item {position} ({name}): empty token")
        tokens.append(ConfiguredToken(name, Role(role), secret))
    return tokens


def configured_tokens(admin_token: str | None, admin_tokens: str | None) -> list[ConfiguredToken]:
    """All tokens from the two settings; ``admin_token`` alone is one operator named admin."""
    tokens = parse_tokens(admin_tokens) if admin_tokens else []
    if admin_token and admin_token.strip():
        if any(t.name == DEFAULT_TOKEN_NAME for t in tokens):
            raise TokenConfigError(
                f"the name {DEFAULT_TOKEN_NAME!r} is reserved for PAYPROC_ADMIN_TOKEN"
            )
        tokens.append(ConfiguredToken(DEFAULT_TOKEN_NAME, Role.OPERATOR, admin_token.strip()))
    if not tokens:
        raise TokenConfigError(
            "no admin token configured: set PAYPROC_ADMIN_TOKEN (one operator token) or "
            "PAYPROC_ADMIN_TOKENS (name:role:token,...)"
        )
    names = [t.name for t in tokens]
    if len(set(names)) != len(names):
        raise TokenConfigError("token names must be unique")
    if len({t.secret for t in tokens}) != len(tokens):
        raise TokenConfigError("two names share one token; every token must be distinct")
    return tokens


class Authenticator:
    """Maps an ``Authorization`` header to a ``Principal`` or raises ``Unauthenticated``."""

    def __init__(self, tokens: Iterable[ConfiguredToken]) -> None:
        self._digests = [_Digest(Principal(t.name, t.role), _hash(t.secret)) for t in tokens]
        if not self._digests:
            raise TokenConfigError("no admin token configured: set PAYPROC_ADMIN_TOKEN")
        self._by_name = {d.principal.name: d for d in self._digests}

    @property
    def names(self) -> list[str]:
        return [d.principal.name for d in self._digests]

    def authenticate(self, authorization: str | None) -> Principal:
        token = bearer_token(authorization)
        if token is None:
            raise Unauthenticated("missing bearer token: send 'Authorization: Bearer <token>'")
        presented = _hash(token)
        found: Principal | None = None
        for candidate in self._digests:  # no early exit: every digest is compared
            if hmac.compare_digest(presented, candidate.digest):
                found = candidate.principal
        if found is None:
            raise Unauthenticated("invalid bearer token")
        return found

    def session_proof(self, principal: Principal, session_id: str) -> str | None:
        """What ties a console session to the token it was signed in with: the hex
        HMAC-SHA256 of ``session_id`` keyed by the digest of the token named
        ``principal.name``; None unless such a token is configured with ``principal.role``.

        Recomputed on every use of the session, it stops matching once the token is removed,
        its role changes or it is rotated. Stored beside the session, it reveals nothing
        about the token to a reader who lacks the session id (which only the browser holds).
        """
        found = self._by_name.get(principal.name)
        if found is None or found.principal != principal:
            return None
        return hmac.new(found.digest, session_id.encode(), hashlib.sha256).hexdigest()

    @staticmethod
    def authorize(principal: Principal, needed: Role) -> None:
        if not principal.may(needed):
            raise Forbidden(f"token {principal.name!r} has role {principal.role}; needs {needed}")


def bearer_token(authorization: str | None) -> str | None:
    """The token of ``Bearer <token>``, or None for anything else."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token
