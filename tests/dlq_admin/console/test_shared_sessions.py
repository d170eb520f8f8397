"""Console sessions live in the database: several admins on one database (replicas behind a
load balancer, or one admin restarted) share them, and each checks them against its own
token configuration. Driven over HTTP, one cookie presented to whichever admin is asked."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select

from dlq_admin.console.sessions import COOKIE, LOGIN_COOKIE
from schemas.console_tables import ConsoleSessionRow
from schemas.tables import utcnow
from tests.dlq_admin.conftest import OPERATOR_TOKEN, VIEWER_TOKEN, Admin, StartAdmin

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Browser:
    """One browser's session cookie, sent to whichever admin a request reaches; each
    admin's client keeps no cookies of its own, so only this one is presented."""

    cookie: str = ""

    async def request(
        self, admin: Admin, method: str, path: str, data: dict[str, str] | None = None
    ) -> httpx.Response:
        admin.client.cookies.clear()
        headers = {"Cookie": f"{COOKIE}={self.cookie}"} if self.cookie else {}
        response = await admin.client.request(method, path, headers=headers, data=data)
        admin.client.cookies.clear()
        return response

    async def sign_in(self, admin: Admin, token: str) -> None:
        admin.client.cookies.clear()
        form = await admin.client.get("/ui/login")
        found = _CSRF.search(form.text)
        assert found is not None
        answer = await admin.client.post(
            "/ui/login",
            data={"token": token, "csrf": found.group(1), "next": "/ui/audit"},
            headers={"Cookie": f"{LOGIN_COOKIE}={form.cookies[LOGIN_COOKIE]}"},
        )
        assert answer.status_code == 303, answer.text
        self.cookie = answer.cookies[COOKIE]
        admin.client.cookies.clear()

    async def signed_in_as(self, admin: Admin) -> str | None:
        """Who this browser is on ``admin`` (the name the page shows), None if sent to sign in."""
        page = await self.request(admin, "GET", "/ui/audit")
        if page.status_code == 303:
            assert page.headers["location"].startswith("/ui/login?")
            return None
        assert page.status_code == 200, page.text
        shown = re.search(r'<form class="who"[^>]*>\s*<span>(\S+) ', page.text)
        assert shown is not None
        return shown.group(1)

    async def sign_out(self, admin: Admin) -> None:
        page = await self.request(admin, "GET", "/ui/audit")
        found = _CSRF.search(page.text)
        assert found is not None
        answer = await self.request(admin, "POST", "/ui/logout", data={"csrf": found.group(1)})
        assert answer.status_code == 303
        assert answer.headers["location"] == "/ui/login?signed_out=1"


async def _start(start_admin: StartAdmin, **overrides: object) -> Admin:
    return await start_admin(ingest=False, run_jobs=False, **overrides)


async def test_a_sign_in_on_one_admin_works_on_another_and_signing_out_ends_it_on_both(
    start_admin: StartAdmin,
) -> None:
    first, second = await _start(start_admin), await _start(start_admin)
    alice = Browser()
    await alice.sign_in(first, OPERATOR_TOKEN)
    assert await alice.signed_in_as(first) == "alice"
    assert await alice.signed_in_as(second) == "alice"
    await alice.sign_out(second)
    assert await alice.signed_in_as(second) is None
    assert await alice.signed_in_as(first) is None


async def test_a_session_survives_a_restart_of_the_admin(start_admin: StartAdmin) -> None:
    before = await _start(start_admin)
    bob = Browser()
    await bob.sign_in(before, VIEWER_TOKEN)
    await before.runtime.stop()
    after = await _start(start_admin)
    assert await bob.signed_in_as(after) == "bob"


async def test_a_session_is_refused_where_its_token_is_no_longer_configured_as_it_was(
    start_admin: StartAdmin,
) -> None:
    """A replica whose configuration removed alice's token, rotated it, or gave it another
    role refuses her session; a replica still configured as at sign-in accepts it."""
    signed_in_on = await _start(start_admin)
    alice = Browser()
    await alice.sign_in(signed_in_on, OPERATOR_TOKEN)
    bob = f"bob:viewer:{VIEWER_TOKEN}"
    for tokens in (
        bob,
        f"alice:operator:{OPERATOR_TOKEN}-rotated,{bob}",
        f"alice:viewer:{OPERATOR_TOKEN},{bob}",
    ):
        reconfigured = await _start(start_admin, admin_tokens=tokens)
        assert await alice.signed_in_as(reconfigured) is None, tokens
    assert await alice.signed_in_as(signed_in_on) == "alice"


async def _rows(admin: Admin) -> list[dict[str, Any]]:
    """The namespace's ``console_sessions`` rows, as the database holds them."""
    assert admin.runtime.engine is not None
    table = ConsoleSessionRow.__table__  # type: ignore[attr-defined]
    async with admin.runtime.engine.connect() as conn:
        rows = await conn.execute(select(table).where(table.c.namespace == admin.names.namespace))
        return [dict(r._mapping) for r in rows]


async def test_the_database_holds_a_hash_of_the_session_id_and_never_the_token(
    start_admin: StartAdmin,
) -> None:
    admin = await _start(start_admin)
    alice = Browser()
    await alice.sign_in(admin, OPERATOR_TOKEN)
    [row] = await _rows(admin)
    assert row["id_hash"] == hashlib.sha256(alice.cookie.encode()).hexdigest()
    assert (row["token_name"], row["role"]) == ("alice", "operator")
    assert row["expires_at"] > row["created_at"]
    for value in map(str, row.values()):
        assert alice.cookie not in value
        assert OPERATOR_TOKEN not in value


async def test_expired_sessions_are_deleted_at_the_next_sign_in(start_admin: StartAdmin) -> None:
    admin = await _start(start_admin)
    await Browser().sign_in(admin, OPERATOR_TOKEN)
    assert admin.runtime.console is not None
    sessions = admin.runtime.console.sessions
    lifetime = timedelta(seconds=sessions.ttl + 1)
    sessions.clock = lambda: utcnow() + lifetime  # alice's sign-in expires
    await Browser().sign_in(admin, VIEWER_TOKEN)
    assert [row["token_name"] for row in await _rows(admin)] == ["bob"]
