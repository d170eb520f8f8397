"""The FastAPI application: routes plus one error shape (``ErrorResponse``) for every failure.

Validation errors never echo the submitted input (it may hold a card number); a refused
mutating call is audited even when FastAPI rejects it before the route runs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from dlq_admin.audit import Actor
from dlq_admin.errors import AdminError, InvalidInput, Unauthenticated
from dlq_admin.parse import clean
from dlq_admin.service import DlqAdmin
from dlq_admin.web.deps import action_of, client_of, target_of
from dlq_admin.web.jobs_routes import jobs
from dlq_admin.web.routes import dlq, health, other
from schemas.dlq import ErrorResponse, FieldError

log = logging.getLogger("payproc.admin")

_MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})

DESCRIPTION = """\
Browse, group, replay and discard payments parked in the dead-letter queue.

Every route but `/healthz` needs `Authorization: Bearer <token>`. Viewer tokens may read;
operator tokens may also replay and discard. Every mutating call, and every refused call,
is written to the audit log (`GET /audit`).
"""


def _response(
    status: int,
    detail: str,
    code: str,
    errors: list[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ErrorResponse(detail=detail, code=code, errors=errors)
    return JSONResponse(body.model_dump(mode="json", exclude_none=True), status, headers=headers)


def _field_errors(errors: Sequence[Any]) -> list[FieldError]:
    out: list[FieldError] = []
    for err in list(errors)[:20]:
        loc = [p if isinstance(p, int) else clean(str(p), 100) for p in err.get("loc", ())]
        out.append(
            FieldError(loc=loc, msg=clean(str(err.get("msg", "")), 300), type=str(err.get("type")))
        )
    return out


def _summary(errors: list[FieldError]) -> str:
    parts = []
    for err in errors[:5]:
        where = ".".join(str(p) for p in err.loc if p not in ("body", "query", "path")) or "body"
        parts.append(f"{where}: {err.msg}")
    return "; ".join(parts) or "invalid request"


def create_app(service: DlqAdmin) -> FastAPI:
    app = FastAPI(
        title="payproc admin API",
        version="1.0",
        description=DESCRIPTION,
    )
    app.state.service = service
    app.include_router(health)
    app.include_router(dlq)
    app.include_router(jobs)
    app.include_router(other)

    @app.exception_handler(AdminError)
    async def admin_error(_request: Request, exc: AdminError) -> JSONResponse:
        errors = None
        if isinstance(exc, InvalidInput) and exc.problems:
            errors = [FieldError(loc=list(p.loc), msg=p.msg, type=p.type) for p in exc.problems]
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthenticated) else None
        return _response(exc.http_status, exc.message, exc.code, errors, headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        actor: Actor | None = getattr(request.state, "actor", None)
        if actor is None and request.url.path != "/healthz":
            # The body failed to parse before authentication ran: authenticate first, so an
            # anonymous caller learns nothing but 401.
            try:
                principal = service.authenticator.authenticate(request.headers.get("authorization"))
                actor = Actor(principal, client_of(request))
            except Unauthenticated as auth_error:
                await service.audit(
                    Actor(None, client_of(request)),
                    action_of(request),
                    target_of(request),
                    auth_error,
                )
                return _response(
                    401,
                    auth_error.message,
                    auth_error.code,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        errors = _field_errors(exc.errors())
        detail = _summary(errors)
        if request.method in _MUTATING and actor is not None:
            await service.audit(
                actor,
                action_of(request),
                target_of(request),
                InvalidInput(detail),
            )
        return _response(422, detail, "invalid_request", errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _response(exc.status_code, str(exc.detail), code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.error(
            "admin request crashed",
            exc_info=exc,
            extra={"path": request.url.path, "method": request.method},
        )
        return _response(500, "internal error (logged)", "internal_error")

    return app
