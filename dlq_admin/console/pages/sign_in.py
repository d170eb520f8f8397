"""Sign in with an admin token, sign out.

The token is checked by ``DlqAdmin.authenticate`` exactly as an API call's bearer token (a
refusal is audited); on success the browser gets a session cookie naming a session held
in the admin's database (valid on every replica until it expires or is signed out), never
the token. The sign-in form has its own CSRF token (double submit with a short-lived cookie),
so another site cannot sign a browser in as someone else.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import RedirectResponse, Response

from dlq_admin.audit import Actor
from dlq_admin.console.deps import ConsoleDep, ConsoleRoute, Form, form_fields, render
from dlq_admin.console.sessions import COOKIE, LOGIN_COOKIE, csrf_matches
from dlq_admin.errors import Forbidden, Unauthenticated
from dlq_admin.web.deps import client_of

router = APIRouter(prefix="/ui", route_class=ConsoleRoute, include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Only a console path is followed after sign-in (never another site)."""
    if target and target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/"


def _login_page(
    request: Request,
    console: ConsoleDep,
    *,
    next_path: str,
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(
        request,
        "login.html",
        status,
        login_csrf=token,
        next_path=next_path,
        notice=notice,
        error=error,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=1800,
        path="/ui/login",
        httponly=True,
        samesite="strict",
        secure=console.config.secure,
    )
    return response


@router.get("/login", name="console.sign_in_page")
async def sign_in_page(
    request: Request,
    console: ConsoleDep,
    next: Annotated[str | None, Query(max_length=500)] = None,
    expired: Annotated[str | None, Query(max_length=5)] = None,
    signed_out: Annotated[str | None, Query(max_length=5)] = None,
) -> Response:
    if await console.sessions.find(request.cookies.get(COOKIE)) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    notice = None
    if expired:
        notice = "Your session expired. Sign in again."
    elif signed_out:
        notice = "You are signed out."
    return _login_page(request, console, next_path=_safe_next(next), notice=notice)


@router.post("/login", name="console.sign_in")
async def sign_in(request: Request, console: ConsoleDep) -> Response:
    fields = await form_fields(request)
    next_path = _safe_next(fields.get("next"))
    if not csrf_matches(request.cookies.get(LOGIN_COOKIE) or "", fields.get("csrf")):
        raise Forbidden("missing or invalid CSRF token: reload the sign-in page")
    token = (fields.get("token") or "").strip()
    client = client_of(request)
    try:
        principal = await console.service.authenticate(
            f"Bearer {token}" if token else None, action="console.sign_in", client=client
        )
    except Unauthenticated:
        return _login_page(
            request,
            console,
            next_path=next_path,
            error="That token is not valid.",
            status=401,
        )
    _, cookie = await console.sessions.create(principal)
    await console.service.audit(Actor(principal, client), "console.sign_in", None, "ok")
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=int(console.config.ttl),
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=console.config.secure,
    )
    response.delete_cookie(LOGIN_COOKIE, path="/ui/login")
    return response


@router.post("/logout", name="console.sign_out")
async def sign_out(console: ConsoleDep, form: Form) -> Response:
    await console.sessions.end(form.session)
    await console.service.audit(form.actor, "console.sign_out", None, "ok")
    response = RedirectResponse("/ui/login?signed_out=1", status_code=303)
    response.delete_cookie(
        COOKIE, path="/ui", httponly=True, samesite="strict", secure=console.config.secure
    )
    return response
