"""The worker's store as columns and plain values, shared by every way of writing it.

The portable SQLAlchemy statements, PostgreSQL's ``unnest`` statements and SQLite's
statements are all built from the column lists here, so a new outcome column (or a new
final status) is added in one place: ``OUTCOME_COLUMNS`` says what an outcome writes into
its ``payments`` row, ``ATTEMPT_COLUMNS`` what goes into its history row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from processor.ports import AttemptOutcome, PaymentSnapshot
from schemas.outcome import FINAL_STATUSES, PaymentStatus
from schemas.payment import PaymentRequest
from schemas.tables import last_error_of

T = TypeVar("T")

MESSAGE_LIMIT = 1000
"""Error messages are cut to the width of their columns."""


@dataclass(frozen=True, slots=True)
class Column(Generic[T]):
    """One column a statement writes: its name, its PostgreSQL type (the fast path sends
    each column as a typed array) and how its value is taken from a ``T``."""

    name: str
    sql_type: str
    value: Callable[[T], Any]
    keep_when_null: bool = False
    """``NULL`` leaves the stored value alone (a retry after a success keeps the charge id)."""

    @property
    def timestamp(self) -> bool:
        return self.sql_type == "timestamptz"


def _message(outcome: AttemptOutcome) -> str | None:
    return outcome.error.message[:MESSAGE_LIMIT] if outcome.error else None


OUTCOME_COLUMNS: tuple[Column[AttemptOutcome], ...] = (
    Column("status", "text", lambda o: o.status.value),
    Column("gateway_charge_id", "text", lambda o: o.charge_id, keep_when_null=True),
    Column("last_error_code", "text", lambda o: o.error.code if o.error else None),
    Column("last_error_message", "text", _message),
    Column("dead_letter_reason", "text", lambda o: o.park_reason.value if o.park_reason else None),
)
"""What an outcome writes into its ``payments`` row. Every outcome also drops the lease and
sets ``updated_at``, and leaves a row that is already final untouched."""

ATTEMPT_COLUMNS: tuple[Column[AttemptOutcome], ...] = (
    Column("payment_id", "text", lambda o: o.payment_id),
    Column("attempt", "int4", lambda o: o.attempt.attempt),
    Column("outcome", "text", lambda o: o.attempt.outcome),
    Column("http_status", "int4", lambda o: o.attempt.http_status),
    Column("error_code", "text", lambda o: o.attempt.error.code if o.attempt.error else None),
    Column(
        "error_message",
        "text",
        lambda o: o.attempt.error.message[:MESSAGE_LIMIT] if o.attempt.error else None,
    ),
    Column("replay_of", "text", lambda o: o.attempt.replay_of),
    Column("started_at", "timestamptz", lambda o: o.attempt.started_at),
    Column("finished_at", "timestamptz", lambda o: o.attempt.finished_at),
    Column(
        "duration_ms",
        "float8",
        lambda o: (o.attempt.finished_at - o.attempt.started_at).total_seconds() * 1000,
    ),
)
"""The ``payment_attempts`` row every outcome inserts."""


def outcome_values(outcome: AttemptOutcome) -> tuple[Any, ...]:
    """``OUTCOME_COLUMNS``' values of ``outcome``, in their order."""
    return tuple(column.value(outcome) for column in OUTCOME_COLUMNS)


def attempt_values(outcome: AttemptOutcome) -> tuple[Any, ...]:
    """``ATTEMPT_COLUMNS``' values of ``outcome``, in their order."""
    return tuple(column.value(outcome) for column in ATTEMPT_COLUMNS)


def outcome_assignments(value_of: Callable[[Column[AttemptOutcome]], str], stored: str = "") -> str:
    """The ``SET`` list of an outcome's ``UPDATE payments``: each of ``OUTCOME_COLUMNS`` set
    to the SQL expression ``value_of`` gives it (a parameter, a column of a derived table),
    the lease dropped. ``stored`` qualifies the stored value a ``keep_when_null`` column
    falls back to (``"t."`` for an aliased table)."""
    parts = [
        f"{column.name} = COALESCE({value_of(column)}, {stored}{column.name})"
        if column.keep_when_null
        else f"{column.name} = {value_of(column)}"
        for column in OUTCOME_COLUMNS
    ]
    return ", ".join([*parts, "lease_owner = NULL", "lease_until = NULL"])


# ---- claims ---------------------------------------------------------------------------------

CLAIM_COLUMNS = (
    ("payment_id", "text"),
    ("amount", "int4"),
    ("currency", "text"),
    ("merchant_id", "text"),
    ("fingerprint", "text"),
    ("lease_owner", "text"),
    ("lease_until", "timestamptz"),
)
"""What differs between the rows a batch of claims inserts (``claim_values``, same order);
the rest is the same for all: status ``processing``, one attempt, created and updated now."""


@dataclass(frozen=True, slots=True)
class ClaimItem:
    request: PaymentRequest
    owner: str
    lease_seconds: float
    reopen: bool


def claim_values(item: ClaimItem, now: datetime) -> tuple[Any, ...]:
    request = item.request
    return (
        request.key,
        request.amount,
        request.currency,
        request.merchant_id,
        request.fingerprint(),
        item.owner,
        now + timedelta(seconds=item.lease_seconds),
    )


def _sql_list(statuses: frozenset[PaymentStatus]) -> str:
    return "(" + ", ".join(f"'{status.value}'" for status in sorted(statuses)) + ")"


FINAL = sorted(status.value for status in FINAL_STATUSES)
FINAL_SQL = _sql_list(FINAL_STATUSES)
REOPENABLE = frozenset({PaymentStatus.DEAD_LETTERED})
"""Final statuses a replay (``reopen``) may claim again; a succeeded or declined payment
is never charged again."""


def claim_conflict_sql(reopen: bool) -> str:
    """The ``ON CONFLICT`` clause of the claim upsert (the target table aliased ``t``,
    the new row ``excluded``), the same statement on PostgreSQL and SQLite.

    A row is taken over only if it is not final (a replay may re-open a dead-lettered one,
    never a succeeded or declined one), its lease is free, expired or our own, and, unless
    re-opening, the amount, currency and merchant are the same."""
    closed = FINAL_STATUSES - REOPENABLE if reopen else FINAL_STATUSES
    same_payment = "TRUE" if reopen else "t.fingerprint = excluded.fingerprint"
    return f"""ON CONFLICT (payment_id) DO UPDATE SET
    status = 'processing', attempts = t.attempts + 1, lease_owner = excluded.lease_owner,
    lease_until = excluded.lease_until, updated_at = excluded.updated_at,
    amount = excluded.amount, currency = excluded.currency,
    merchant_id = excluded.merchant_id, fingerprint = excluded.fingerprint,
    dead_letter_reason = NULL
WHERE t.status NOT IN {_sql_list(closed)}
    AND (t.lease_until IS NULL OR t.lease_until < excluded.updated_at
         OR t.lease_owner = excluded.lease_owner)
    AND {same_payment}
RETURNING payment_id, attempts"""


# ---- reading rows back ----------------------------------------------------------------------

SNAPSHOT_COLUMNS = (
    "payment_id",
    "status",
    "attempts",
    "gateway_charge_id",
    "last_error_code",
    "last_error_message",
    "dead_letter_reason",
    "updated_at",
    "fingerprint",
    "lease_until",
)
"""The columns read back: what ``snapshot_of`` and a refused claim need."""


def snapshot_of(row: Mapping[Any, Any]) -> PaymentSnapshot:
    return PaymentSnapshot(
        payment_id=row["payment_id"],
        status=PaymentStatus(row["status"]),
        attempts=row["attempts"],
        gateway_charge_id=row["gateway_charge_id"],
        last_error=last_error_of(row),
        dead_letter_reason=row["dead_letter_reason"],
        updated_at=row["updated_at"],
    )
