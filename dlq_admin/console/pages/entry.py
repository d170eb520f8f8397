"""Entry: one parked message whole (body with card numbers masked, headers, its rounds and
attempts on a time line, its payment's current state), and discarding it after a
confirmation. Replaying it, edited or not, is ``pages.edit``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import RedirectResponse, Response

from dlq_admin.console.deps import ConsoleDep, ConsoleRoute, Me, OperatorForm, action_of, render
from dlq_admin.console.inputs import text_of
from dlq_admin.console.render import masked_json
from dlq_admin.console.sessions import Session
from dlq_admin.console.timeline import timeline
from dlq_admin.replay_rules import payment_refusal
from dlq_admin.web.deps import client_of, target_of
from schemas.dlq import DlqEntryDetail, EntryStatus, Role

router = APIRouter(prefix="/ui", route_class=ConsoleRoute, include_in_schema=False)

EntryId = Annotated[str, Path(max_length=200)]

NOTICES = {
    "replayed": "Replayed: the message was published with a fresh attempt budget.",
    "replayed-edited": "Replayed with the edited body.",
    "discarded": "Discarded. The entry is kept with status discarded.",
}


async def must_operate(request: Request, console: ConsoleDep, me: Session) -> None:
    """A page that only leads to a mutation (a confirmation, the editor) is for operators."""
    await console.service.authorize(
        me.principal,
        Role.OPERATOR,
        action=action_of(request),
        target=target_of(request),
        client=client_of(request),
    )


def refusal_of(entry: DlqEntryDetail) -> str | None:
    """Why this entry may not be replayed now, in words; None if it may."""
    if entry.status is EntryStatus.REPLAYED:
        return f"Already replayed at {entry.replayed_at:%Y-%m-%d %H:%M:%S} by {entry.replayed_by}."
    if entry.status is EntryStatus.DISCARDED:
        return f"Discarded by {entry.discarded_by}; a discarded entry is not replayed."
    if entry.status is EntryStatus.REPLAYING:
        return "A replay of this entry is in flight."
    payment = entry.payment
    if payment is not None:
        status = payment.status.value
        if payment_refusal(status) is not None:
            return (
                f"Payment {payment.payment_id} is already {status}: a final payment is never "
                "replayed (it would not be charged again anyway)."
            )
        if status == "unknown":
            return (
                f"Payment {payment.payment_id} is in doubt (outcome unknown): it is replayed "
                "only after reconciliation settles it."
            )
    return None


def entry_page(
    request: Request,
    entry: DlqEntryDetail,
    status: int = 200,
    *,
    notice: str | None = None,
    error: str | None = None,
) -> Response:
    return render(
        request,
        "entry.html",
        status,
        nav="entries",
        e=entry,
        body=masked_json(entry.body),
        headers=masked_json(entry.headers),
        events=timeline(entry),
        refusal=refusal_of(entry),
        notice=notice,
        error=error,
    )


@router.get("/entries/{entry_id}", name="console.entry")
async def show_entry(
    request: Request,
    console: ConsoleDep,
    _me: Me,
    entry_id: EntryId,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    entry = await console.service.get_entry(entry_id)
    return entry_page(request, entry, notice=NOTICES.get(done or ""))


@router.get("/entries/{entry_id}/discard", name="console.discard_confirm")
async def confirm_discard(
    request: Request, console: ConsoleDep, me: Me, entry_id: EntryId
) -> Response:
    await must_operate(request, console, me)
    entry = await console.service.get_entry(entry_id)
    return render(request, "discard.html", nav="entries", e=entry)


@router.post("/entries/{entry_id}/discard", name="console.discard")
async def discard(console: ConsoleDep, form: OperatorForm, entry_id: EntryId) -> Response:
    note = text_of("note", form.get("note"), 500)
    await console.service.discard(form.actor, entry_id, note)
    return RedirectResponse(f"/ui/entries/{entry_id}?done=discarded", status_code=303)
