"""Query and form values as the console reads them: enums and times from text, with a
readable ``InvalidInput`` (shown on the page) for anything else."""

from __future__ import annotations

from datetime import UTC, datetime

from dlq_admin.errors import FieldProblem, InvalidInput
from schemas.dlq import EntryStatus
from schemas.outcome import ParkReason


def _invalid(name: str, message: str) -> InvalidInput:
    return InvalidInput(f"{name}: {message}", [FieldProblem(("query", name), message)])


def status_of(value: str | None) -> EntryStatus | None:
    if not value:
        return None
    try:
        return EntryStatus(value)
    except ValueError:
        raise _invalid("status", "not an entry status") from None


def reason_of(value: str | None) -> ParkReason | None:
    if not value:
        return None
    try:
        return ParkReason(value)
    except ValueError:
        raise _invalid("reason", "not a park reason") from None


def time_of(name: str, value: str | None) -> datetime | None:
    """``2026-12-01T21:30`` (a ``datetime-local`` input) or full ISO 8601; naive is UTC."""
    if not value:
        return None
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        raise _invalid(name, "not a date and time (YYYY-MM-DDTHH:MM, UTC)") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def text_of(name: str, value: str | None, size: int) -> str | None:
    if not value or not value.strip():
        return None
    value = value.strip()
    if len(value) > size or "\x00" in value:
        raise _invalid(name, f"at most {size} characters, no NUL")
    return value
