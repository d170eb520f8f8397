"""An entry's life on one time line: each parking of the message (every round of the replay
chain), each replay, and each gateway attempt of its payment, oldest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from schemas.dlq import DlqEntryDetail


@dataclass(frozen=True, slots=True)
class Event:
    at: datetime
    kind: str
    """``parked``, ``replayed``, ``discarded``, ``attempt-ok`` or ``attempt-bad`` (a CSS class)."""
    title: str
    detail: str
    entry_id: str | None = None


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def timeline(entry: DlqEntryDetail) -> list[Event]:
    events: list[Event] = []
    rounds = entry.rounds or []
    for number, r in enumerate(rounds, start=1):
        error = " ".join(str(p) for p in (r.error.code, r.error.http_status, r.error.message) if p)
        events.append(
            Event(
                _utc(r.dead_lettered_at),
                "parked",
                f"Round {number}: parked ({r.reason}) after {r.attempts} attempt(s)",
                error,
                r.id,
            )
        )
        if r.replayed_at is not None:
            events.append(
                Event(
                    _utc(r.replayed_at),
                    "replayed",
                    f"Round {number}: replayed by {r.replayed_by or '?'}",
                    "",
                    r.id,
                )
            )
    if entry.discarded_at is not None:
        events.append(
            Event(_utc(entry.discarded_at), "discarded", f"Discarded by {entry.discarded_by}", "")
        )
    for a in entry.history:
        ok = a.outcome == "succeeded"
        status = f"HTTP {a.http_status}" if a.http_status else ""
        error = " ".join(p for p in (status, a.error_code or "", a.error_message or "") if p)
        replay = f" (replay of {a.replay_of[:8]}…)" if a.replay_of else ""
        events.append(
            Event(
                _utc(a.started_at),
                "attempt-ok" if ok else "attempt-bad",
                f"Attempt {a.attempt}: {a.outcome}{replay}, {a.duration_ms:.0f} ms",
                error,
            )
        )
    events.sort(key=lambda e: e.at)
    return events
