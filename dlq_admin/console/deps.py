"""What every console route shares: the signed-in session, posted forms checked for their
CSRF token and role, and one place that turns refusals into pages.

A page needs a live session (else: to the sign-in page). A form that changes something needs
the session's CSRF token (form field ``csrf`` or header ``X-CSRF-Token``; else 403), and a
mutating one the operator role, checked by the same ``DlqAdmin.authorize`` as the API, so a
viewer's forged POST is refused (403) and audited like an API call would be.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.responses import HTMLResponse, RedirectResponse, Response

from dlq_admin.audit import Actor
from dlq_admin.console.render import SECURITY_HEADERS, page
from dlq_admin.console.sessions import COOKIE, ConsoleConfig, Session, SessionStore, csrf_matches
from dlq_admin.errors import AdminError, Forbidden, InvalidInput
from dlq_admin.service import DlqAdmin
from dlq_admin.web.deps import client_of, target_of
from schemas.dlq import Role

log = logging.getLogger("payproc.admin")

MAX_FORM = 256 * 1024


@dataclass
class Console:
    """The console's state on ``app.state.console``."""

    service: DlqAdmin
    sessions: SessionStore
    config: ConsoleConfig


class SignInRequired(Exception):
    """No live session: the route answers with a redirect to the sign-in page."""

    def __init__(self, expired: bool) -> None:
        super().__init__("sign in")
        self.expired = expired


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def action_of(request: Request) -> str:
    route = request.scope.get("route")
    return str(getattr(route, "name", None) or request.url.path)[:64]


def render(request: Request, template: str, http_status: int = 200, **context: Any) -> HTMLResponse:
    """Render a page for whoever is signed in on this request (if anyone)."""
    session = getattr(request.state, "console_session", None)
    refresh = console_of(request).config.refresh_ms
    return page(template, session, http_status, refresh_ms=refresh, code=http_status, **context)


class ConsoleRoute(APIRoute):
    """Runs a console route; refusals become pages (or a redirect to sign in) and every
    response carries the security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignInRequired as exc:
                target = quote(request.url.path, safe="/")
                where = f"/ui/login?next={target}" + ("&expired=1" if exc.expired else "")
                response = RedirectResponse(where, status_code=303)
            except AdminError as exc:
                response = render(request, "error.html", exc.http_status, message=exc.message)
            except RequestValidationError:
                response = render(request, "error.html", 422, message="invalid request parameters")
            except Exception:
                log.exception("console page crashed", extra={"path": request.url.path})
                response = render(request, "error.html", 500, message="internal error (logged)")
            response.headers.update(SECURITY_HEADERS)
            return response

        return run


async def signed_in(request: Request) -> Session:
    """The live session of this browser, else ``SignInRequired``."""
    cookie = request.cookies.get(COOKIE)
    session = await console_of(request).sessions.find(cookie)
    if session is None:
        raise SignInRequired(expired=bool(cookie))
    request.state.console_session = session
    return session


Me = Annotated[Session, Depends(signed_in)]


@dataclass
class Posted:
    """A form posted by a signed-in user, its CSRF token checked."""

    session: Session
    actor: Actor
    fields: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> str | None:
        value = self.fields.get(name)
        return value if value not in (None, "") else None


async def form_fields(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body as one value per name."""
    body = await request.body()
    if len(body) > MAX_FORM:
        raise InvalidInput("form too large")
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=200)
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput("malformed form") from None
    return {name: values[-1] for name, values in parsed.items()}


async def posted(request: Request, session: Me) -> Posted:
    """A state-changing form of any role: 403 (audited) without the session's CSRF token."""
    fields = await form_fields(request)
    actor = Actor(session.principal, client_of(request))
    presented = fields.get("csrf") or request.headers.get("x-csrf-token")
    if not csrf_matches(session.csrf, presented):
        refusal = Forbidden("missing or invalid CSRF token: reload the page and try again")
        await console_of(request).service.audit(
            actor, action_of(request), target_of(request), refusal
        )
        raise refusal
    return Posted(session, actor, fields)


Form = Annotated[Posted, Depends(posted)]


async def operator_posted(request: Request, form: Form) -> Posted:
    """A mutating form: the CSRF token and the operator role (refusals audited, 403)."""
    await console_of(request).service.authorize(
        form.session.principal,
        Role.OPERATOR,
        action=action_of(request),
        target=target_of(request),
        client=client_of(request),
    )
    return form


OperatorForm = Annotated[Posted, Depends(operator_posted)]


def get_console(request: Request) -> Console:
    return console_of(request)


ConsoleDep = Annotated[Console, Depends(get_console)]
