"""The audit log, cross-cutting: who did what to which target, when, and how it ended.

Every mutating call and every refused call is written as one row (actor, role, action,
target, outcome, HTTP status, detail, client). The capabilities do not write rows
themselves: their mutating methods are wrapped with ``@audited(action, target, describe)``,
which writes the row after the call returned (``describe`` turns the result into an outcome
and a detail) or failed (an ``AdminError`` gives its code and status, anything else
``error``). Refusals before a capability runs (authentication, role, request validation)
are written by ``dlq_admin.access`` and the web layer through ``AuditLog.record``.
An audit failure is logged and never hides the call's own result.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import orjson

from dlq_admin.auth import Principal
from dlq_admin.errors import AdminError
from dlq_admin.paging import decode_id_cursor, encode_id_cursor
from dlq_admin.parse import clean
from dlq_admin.ports import AuditRecord, AuditStore
from dlq_admin.validation import no_nul
from schemas.dlq import AuditEntry, AuditPage

log = logging.getLogger("payproc.admin")

Detail = Mapping[str, Any] | str | None
"""What an audit row says beyond its outcome: a JSON object or a line of text."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is calling and from where, for the audit log."""

    principal: Principal | None
    client: str | None = None

    @property
    def name(self) -> str | None:
        return self.principal.name if self.principal else None

    @property
    def role(self) -> str | None:
        return self.principal.role.value if self.principal else None


class AuditLog:
    """Writes and pages the audit log."""

    def __init__(self, store: AuditStore) -> None:
        self.store = store

    async def record(
        self,
        actor: Actor,
        action: str,
        target: str | None,
        outcome: AdminError | str,
        detail: Detail = None,
    ) -> None:
        """Write one audit row; an audit failure is logged, never hides the call's result."""
        if isinstance(outcome, AdminError):
            outcome_text, status = outcome.code, outcome.http_status
            detail = detail or outcome.message
        else:
            outcome_text, status = outcome, 200
        text = detail if isinstance(detail, str) or detail is None else _json_text(detail)
        record = AuditRecord(
            actor=actor.name,
            role=actor.role,
            action=action,
            target=clean(target, 500) if target else None,
            outcome=outcome_text,
            status_code=status,
            detail=clean(text, 4000) if text else None,
            client=actor.client,
        )
        try:
            await self.store.add_audit(record)
        except Exception:
            log.exception("could not write an audit row", extra={"action": action})

    async def page(
        self,
        limit: int,
        cursor: str | None,
        actor: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
    ) -> AuditPage:
        """Audit rows newest first, optionally filtered, after ``cursor``."""
        before = decode_id_cursor(cursor) if cursor else None
        for name, value in (("actor", actor), ("action", action), ("outcome", outcome)):
            no_nul(name, value)
        rows = await self.store.list_audit(limit, before, actor, action, outcome)
        items = [AuditEntry.model_validate(row, from_attributes=True) for row in rows]
        next_cursor = encode_id_cursor(items[-1].id) if len(items) == limit and items else None
        return AuditPage(items=items, next_cursor=next_cursor)


class Audited(Protocol):
    """A capability whose methods ``@audited`` wraps: it holds the audit log."""

    audit_log: AuditLog


A = TypeVar("A", bound=Audited)
S = TypeVar("S")
R = TypeVar("R")
P = ParamSpec("P")


def audited(
    action: str,
    target: Callable[[S], str | None],
    describe: Callable[[R], tuple[str, Detail]],
) -> Callable[
    [Callable[Concatenate[A, Actor, S, P], Awaitable[R]]],
    Callable[Concatenate[A, Actor, S, P], Awaitable[R]],
]:
    """Audit a mutating method ``(self, actor, subject, ...)``: ``target(subject)`` names what
    it acted on; ``describe(result)`` gives the outcome and detail of a call that returned.
    The caller must be authenticated (``actor.principal`` set)."""

    def wrap(
        method: Callable[Concatenate[A, Actor, S, P], Awaitable[R]],
    ) -> Callable[Concatenate[A, Actor, S, P], Awaitable[R]]:
        @functools.wraps(method)
        async def run(self: A, actor: Actor, subject: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
            assert actor.principal is not None
            name = target(subject)
            try:
                result = await method(self, actor, subject, *args, **kwargs)
            except AdminError as exc:
                await self.audit_log.record(actor, action, name, exc)
                raise
            except Exception as exc:
                await self.audit_log.record(actor, action, name, "error", type(exc).__name__)
                raise
            outcome, detail = describe(result)
            await self.audit_log.record(actor, action, name, outcome, detail)
            return result

        return run

    return wrap


def entry_target(entry_id: str) -> str:
    """The audit target of a call on one entry: its id."""
    return entry_id


def _json_text(value: Mapping[str, Any]) -> str:
    return orjson.dumps(value, default=str).decode()
