"""The admin API routes: thin — parse, call the service, return its model."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from dlq_admin.ports import EntryFilters
from dlq_admin.web.deps import Operator, Service, Viewer
from schemas.dlq import (
    MAX_PAGE,
    AuditPage,
    BulkDiscardResult,
    BulkReplayResult,
    BulkSelection,
    DlqEntryDetail,
    DlqEntrySummary,
    DlqGroups,
    DlqPage,
    DlqStats,
    EntryStatus,
    ErrorResponse,
    Health,
    PaymentView,
    Readiness,
    ReplayRequest,
    ReplayResult,
)
from schemas.outcome import ParkReason
from schemas.replay_jobs import ReplayJobView, ReplaySelection

ERROR_TEXT: Mapping[int, str] = {
    401: "missing or invalid bearer token",
    403: "the token's role may not do this (viewer on a mutating route)",
    404: "unknown id",
    409: "the entry or its payment is not replayable in its current state",
    422: "invalid parameters or body; `errors` names the fields",
    503: "database or broker unavailable; nothing was changed",
}
"""What each error status of a route means, for the OpenAPI document."""


def error_responses(
    *codes: int, text: Mapping[int, str] = ERROR_TEXT
) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of a route for ``codes``: the error body and its meaning."""
    return {code: {"model": ErrorResponse, "description": text[code]} for code in codes}


READ_ERRORS = error_responses(401, 422, 503)
WRITE_ERRORS = error_responses(401, 403, 404, 409, 422, 503)

EntryId = Annotated[str, Path(description="a DLQ entry id", max_length=200)]

health = APIRouter(tags=["health"])
dlq = APIRouter(prefix="/dlq", tags=["dlq"])
other = APIRouter(tags=["payments", "audit"])


@health.get("/healthz", name="healthz", response_model=Health, summary="Liveness (no auth)")
async def healthz() -> Health:
    return Health(status="ok")


@health.get(
    "/readyz",
    name="readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "a dependency is down"}},
    summary="Readiness: database, broker and ingest consumer (no auth; no data)",
)
async def readyz(request: Request) -> JSONResponse:
    check = getattr(request.app.state, "readiness", None)
    checks: dict[str, bool] = await check() if check is not None else {}
    ok = bool(checks) and all(checks.values())
    body = Readiness(status="ready" if ok else "not_ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@health.get(
    "/metrics",
    name="metrics",
    response_class=PlainTextResponse,
    responses=READ_ERRORS,
    summary="Prometheus metrics (viewer token: use Prometheus' `authorization` setting)",
)
async def metrics(request: Request, _actor: Viewer) -> PlainTextResponse:
    render = getattr(request.app.state, "metrics", None)
    body = await render() if render is not None else b""
    return PlainTextResponse(body, media_type=CONTENT_TYPE_LATEST)


@dlq.get(
    "/messages",
    name="dlq.list",
    response_model=DlqPage,
    responses=READ_ERRORS,
    summary="Page through DLQ entries, newest first",
)
async def list_messages(
    service: Service,
    _actor: Viewer,
    reason: Annotated[ParkReason | None, Query(description="why it was parked")] = None,
    status: Annotated[EntryStatus | None, Query(description="entry status")] = None,
    payment_id: Annotated[str | None, Query(max_length=64)] = None,
    merchant_id: Annotated[str | None, Query(max_length=255)] = None,
    since: Annotated[
        datetime | None, Query(description="dead-lettered at or after (ISO 8601; UTC if naive)")
    ] = None,
    until: Annotated[datetime | None, Query(description="dead-lettered before (ISO 8601)")] = None,
    group: Annotated[
        str | None, Query(max_length=400, description="a fingerprint from /dlq/groups")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=500, description="next_cursor of the previous page")
    ] = None,
) -> DlqPage:
    filters = EntryFilters(
        reason=reason,
        status=status,
        payment_id=payment_id,
        merchant_id=merchant_id,
        since=since,
        until=until,
        fingerprint=group,
    )
    return await service.list_entries(filters, limit, cursor)


@dlq.get(
    "/messages/{entry_id}",
    name="dlq.show",
    response_model=DlqEntryDetail,
    responses=error_responses(401, 404, 422, 503),
    summary="One entry whole: body, headers, replay rounds and attempt history",
)
async def show_message(service: Service, _actor: Viewer, entry_id: EntryId) -> DlqEntryDetail:
    return await service.get_entry(entry_id)


@dlq.get(
    "/stats",
    name="dlq.stats",
    response_model=DlqStats,
    responses=error_responses(401, 503),
    summary="Counts by reason and status, oldest parked age, messages waiting in N.dlq",
)
async def stats(service: Service, _actor: Viewer) -> DlqStats:
    return await service.stats()


@dlq.get(
    "/groups",
    name="dlq.groups",
    response_model=DlqGroups,
    responses=READ_ERRORS,
    summary="Entries grouped by failure fingerprint (reason + error code/status + exception)",
)
async def groups(
    service: Service,
    _actor: Viewer,
    status: Annotated[EntryStatus, Query()] = EntryStatus.PARKED,
    reason: Annotated[ParkReason | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> DlqGroups:
    return await service.groups(status, reason, limit)


@dlq.post(
    "/messages/{entry_id}/replay",
    name="dlq.replay",
    response_model=ReplayResult,
    responses=WRITE_ERRORS,
    summary="Republish one entry with a fresh attempt budget (optionally with an edited body)",
)
async def replay(
    service: Service,
    actor: Operator,
    entry_id: EntryId,
    body: Annotated[ReplayRequest | None, Body()] = None,
) -> ReplayResult:
    payload = body.payload if body is not None else None
    return await service.replay(actor, entry_id, payload)


@dlq.post(
    "/replay",
    name="dlq.bulk_replay",
    response_model=BulkReplayResult,
    responses={
        202: {"model": ReplayJobView, "description": "a replay job was created"},
        **error_responses(401, 403, 422, 503),
    },
    summary="Replay a selection (ids, reason, group, merchant, status, time window): "
    "creates a replay job (202); "
    "dry_run answers 200 with what would be replayed",
)
async def bulk_replay(
    service: Service, actor: Operator, selection: Annotated[ReplaySelection, Body()]
) -> Any:
    result = await service.replay_selection(actor, selection)
    if isinstance(result, ReplayJobView):
        return JSONResponse(result.model_dump(mode="json"), status_code=202)
    return result


@dlq.delete(
    "/messages/{entry_id}",
    name="dlq.discard",
    response_model=DlqEntrySummary,
    responses=WRITE_ERRORS,
    summary="Discard one entry (kept with status discarded; nothing is deleted)",
)
async def discard(
    service: Service,
    actor: Operator,
    entry_id: EntryId,
    note: Annotated[str | None, Query(max_length=500, description="why, for the audit")] = None,
) -> DlqEntrySummary:
    return await service.discard(actor, entry_id, note)


@dlq.post(
    "/discard",
    name="dlq.bulk_discard",
    response_model=BulkDiscardResult,
    responses=error_responses(401, 403, 422, 503),
    summary="Discard many entries by ids, reason or group (dry_run supported)",
)
async def bulk_discard(
    service: Service, actor: Operator, selection: Annotated[BulkSelection, Body()]
) -> BulkDiscardResult:
    return await service.bulk_discard(actor, selection)


@other.get(
    "/payments/{payment_id}",
    name="payments.show",
    response_model=PaymentView,
    responses=error_responses(401, 404, 422, 503),
    summary="A payment as the worker stored it",
    tags=["payments"],
)
async def payment(
    service: Service,
    _actor: Viewer,
    payment_id: Annotated[str, Path(max_length=200)],
) -> PaymentView:
    return await service.payment(payment_id)


@other.get(
    "/audit",
    name="audit.list",
    response_model=AuditPage,
    responses=READ_ERRORS,
    summary="The audit log, newest first",
    tags=["audit"],
)
async def audit(
    service: Service,
    _actor: Viewer,
    actor: Annotated[str | None, Query(max_length=100, description="token name")] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    outcome: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> AuditPage:
    return await service.audit_page(limit, cursor, actor, action, outcome)
