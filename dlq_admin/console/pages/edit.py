"""Replay an entry, as it was or with an edited body.

Editing is two steps, and nothing is published until the second: the edited JSON is parsed
and validated exactly as the worker will (``dlq_admin.validation.validate_edit``, the check
the API's replay runs) and shown as a diff against the parked body with any errors inline;
only "Replay" on that preview calls ``DlqAdmin.replay`` (which validates again). A refused
replay (the entry or its payment is final or in doubt) shows the reason on the entry page.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Request
from starlette.responses import RedirectResponse, Response

from dlq_admin.console.deps import ConsoleDep, ConsoleRoute, Me, OperatorForm, render
from dlq_admin.console.pages.entry import entry_page, must_operate
from dlq_admin.console.render import masked_json
from dlq_admin.errors import Conflict, InvalidInput
from dlq_admin.validation import validate_edit
from schemas.dlq import DlqEntryDetail

router = APIRouter(prefix="/ui", route_class=ConsoleRoute, include_in_schema=False)

EntryId = Annotated[str, Path(max_length=200)]


@dataclass(frozen=True, slots=True)
class DiffLine:
    kind: str
    """``add``, ``del``, ``hunk`` or ``same`` (a CSS class)."""
    text: str


def diff(before: str, after: str) -> list[DiffLine]:
    lines = []
    for line in difflib.unified_diff(
        before.splitlines(), after.splitlines(), "parked", "edited", n=3, lineterm=""
    ):
        if line.startswith(("---", "+++")):
            continue
        kind = {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "same")
        lines.append(DiffLine(kind, line))
    return lines


@dataclass(frozen=True, slots=True)
class Parsed:
    payload: dict[str, Any] | None
    pretty: str
    errors: list[str]


def parse_payload(text: str) -> Parsed:
    """The edited body as a JSON object, or the errors that say why it is not one."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return Parsed(None, text, [f"not JSON: {exc}"])
    pretty = masked_json(value)
    if not isinstance(value, dict):
        return Parsed(None, pretty, ["the body must be a JSON object"])
    return Parsed(value, pretty, [])


def problems_of(exc: InvalidInput) -> list[str]:
    if not exc.problems:
        return [exc.message]
    out = []
    for p in exc.problems:
        where = ".".join(str(x) for x in p.loc if x not in ("body", "payload")) or "body"
        out.append(f"{where}: {p.msg}")
    return out


def edit_page(
    request: Request,
    entry: DlqEntryDetail,
    text: str,
    status: int = 200,
    *,
    errors: list[str] | None = None,
    lines: list[DiffLine] | None = None,
    valid: bool = False,
) -> Response:
    return render(
        request,
        "edit.html",
        status,
        nav="entries",
        e=entry,
        text=text,
        errors=errors or [],
        lines=lines,
        valid=valid,
    )


@router.get("/entries/{entry_id}/edit", name="console.edit")
async def edit_form(request: Request, console: ConsoleDep, me: Me, entry_id: EntryId) -> Response:
    await must_operate(request, console, me)
    entry = await console.service.get_entry(entry_id)
    return edit_page(request, entry, masked_json(entry.body))


@router.post("/entries/{entry_id}/edit", name="console.edit_preview")
async def edit_preview(
    request: Request, console: ConsoleDep, form: OperatorForm, entry_id: EntryId
) -> Response:
    """The diff and the validation of an edited body; publishes nothing."""
    entry = await console.service.get_entry(entry_id)
    text = form.get("payload") or ""
    parsed = parse_payload(text)
    lines = diff(masked_json(entry.body), parsed.pretty)
    errors = list(parsed.errors)
    if parsed.payload is not None:
        try:
            validate_edit(parsed.payload, entry.payment_id)
        except InvalidInput as exc:
            errors = problems_of(exc)
    valid = not errors
    return edit_page(
        request, entry, text, 200 if valid else 422, errors=errors, lines=lines, valid=valid
    )


@router.post("/entries/{entry_id}/replay", name="console.replay")
async def replay(
    request: Request, console: ConsoleDep, form: OperatorForm, entry_id: EntryId
) -> Response:
    text = form.get("payload")
    payload = None
    if text is not None:
        parsed = parse_payload(text)
        if parsed.payload is None:
            entry = await console.service.get_entry(entry_id)
            return edit_page(request, entry, text, 422, errors=parsed.errors)
        payload = parsed.payload
    try:
        await console.service.replay(form.actor, entry_id, payload)
    except InvalidInput as exc:
        entry = await console.service.get_entry(entry_id)
        return edit_page(request, entry, text or "", 422, errors=problems_of(exc))
    except Conflict as exc:
        entry = await console.service.get_entry(entry_id)
        return entry_page(request, entry, 409, error=f"Replay refused: {exc.message}")
    done = "replayed-edited" if payload is not None else "replayed"
    return RedirectResponse(f"/ui/entries/{entry_id}?done={done}", status_code=303)
