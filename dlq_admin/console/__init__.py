"""The operator console: server-rendered pages at ``/ui/`` of ``payproc admin``.

The console is another face of the same ``DlqAdmin`` the JSON API calls, in the same process,
with the same tokens, roles and audit log: a replay from a page is the very call
``POST /dlq/messages/{id}/replay`` makes. ``sessions`` signs a browser in (a session held
in the admin's database, shared by every replica, behind a cookie carrying a random id, never
the token; its SQL in ``session_rows``); ``deps`` checks sessions, CSRF tokens and roles and
turns refusals into pages; ``render`` holds the Jinja2 environment (autoescape
on) and the security headers; ``pages`` has one module per page group; ``optional`` finds
capabilities this admin may lack (replay jobs, ``unknown`` payments). ``static/`` holds the
stylesheet and the one small script (progressive enhancement only: every page works
without it).
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from dlq_admin.console.deps import Console
from dlq_admin.console.pages import (
    audit,
    edit,
    entries,
    entry,
    groups,
    jobs,
    new_job,
    overview,
    sign_in,
)
from dlq_admin.console.render import SECURITY_HEADERS, STATIC
from dlq_admin.console.sessions import ConsoleConfig, SessionRows, SessionStore
from dlq_admin.service import DlqAdmin

__all__ = ["Console", "ConsoleConfig", "mount_console"]


class _Static(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        response.headers["Cache-Control"] = "private, max-age=300"
        return response


def mount_console(
    app: FastAPI, service: DlqAdmin, config: ConsoleConfig, session_rows: SessionRows
) -> Console:
    """Serve the console at ``/ui/`` of ``app``, its sessions in ``session_rows``; returns
    its state (sessions, config)."""
    sessions = SessionStore(session_rows, service.authenticator, config.ttl)
    console = Console(service, sessions, config)
    app.state.console = console
    for module in (sign_in, overview, groups, entries, entry, edit, jobs, new_job, audit):
        app.include_router(module.router)
    app.mount("/ui/static", _Static(directory=STATIC), name="console-static")

    @app.get("/ui", include_in_schema=False)
    async def ui_root() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=307)

    return console
