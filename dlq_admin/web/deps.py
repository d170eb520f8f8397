"""FastAPI dependencies: the service, and the caller authenticated and authorised by role."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from dlq_admin.audit import Actor
from dlq_admin.auth import Principal
from dlq_admin.service import DlqAdmin
from schemas.dlq import Role

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="A named admin token (PAYPROC_ADMIN_TOKEN / PAYPROC_ADMIN_TOKENS).",
)


def get_service(request: Request) -> DlqAdmin:
    service: DlqAdmin = request.app.state.service
    return service


Service = Annotated[DlqAdmin, Depends(get_service)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]


def action_of(request: Request) -> str:
    """The audited action: the route's name (``dlq.replay``), else method and path."""
    route = request.scope.get("route")
    name = getattr(route, "name", None)
    return str(name) if name else f"{request.method} {request.url.path}"[:64]


def target_of(request: Request) -> str | None:
    params = request.path_params
    value = params.get("entry_id") or params.get("payment_id")
    if value is None and params.get("job_id") is not None:
        value = f"job:{params['job_id']}"
    return str(value) if value is not None else None


def client_of(request: Request) -> str | None:
    return request.client.host if request.client else None


async def _authenticated(request: Request, service: DlqAdmin, needed: Role) -> Actor:
    action, target, client = action_of(request), target_of(request), client_of(request)
    principal: Principal = await service.authenticate(
        request.headers.get("authorization"), action=action, target=target, client=client
    )
    request.state.actor = Actor(principal, client)
    if needed is not Role.VIEWER:
        await service.authorize(principal, needed, action=action, target=target, client=client)
    return Actor(principal, client)


async def require_viewer(request: Request, service: Service, _: Credentials) -> Actor:
    return await _authenticated(request, service, Role.VIEWER)


async def require_operator(request: Request, service: Service, _: Credentials) -> Actor:
    return await _authenticated(request, service, Role.OPERATOR)


Viewer = Annotated[Actor, Depends(require_viewer)]
Operator = Annotated[Actor, Depends(require_operator)]
