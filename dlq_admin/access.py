"""Authentication and authorisation of a call, each refusal written to the audit log."""

from __future__ import annotations

from dlq_admin.audit import Actor, AuditLog
from dlq_admin.auth import Authenticator, Principal
from dlq_admin.errors import AdminError, Unauthenticated
from schemas.dlq import Role


class Access:
    """Checks bearer tokens and roles; who was refused, and for what, is audited."""

    def __init__(self, authenticator: Authenticator, audit_log: AuditLog) -> None:
        self.authenticator = authenticator
        self.audit_log = audit_log

    async def authenticate(
        self,
        authorization: str | None,
        *,
        action: str,
        target: str | None = None,
        client: str | None = None,
    ) -> Principal:
        """The caller's principal; a refusal is audited and raised as ``Unauthenticated``."""
        try:
            return self.authenticator.authenticate(authorization)
        except Unauthenticated as exc:
            await self.audit_log.record(Actor(None, client), action, target, exc)
            raise

    async def authorize(
        self,
        principal: Principal,
        needed: Role,
        *,
        action: str,
        target: str | None = None,
        client: str | None = None,
    ) -> None:
        """Return if ``principal`` may act with role ``needed``; a refusal is audited."""
        try:
            self.authenticator.authorize(principal, needed)
        except AdminError as exc:
            await self.audit_log.record(Actor(principal, client), action, target, exc)
            raise
