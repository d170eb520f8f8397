"""The console's pure parts: sessions (expiry, tampering, what is stored, the token check),
the CSRF comparison, query parsing, the edit diff, card masking and escaping in templates."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from dlq_admin.auth import Authenticator, ConfiguredToken, Principal
from dlq_admin.console.inputs import reason_of, status_of, time_of
from dlq_admin.console.pages.edit import diff, parse_payload
from dlq_admin.console.render import ENV, ago, masked_json
from dlq_admin.console.sessions import SessionStore, StoredSession, csrf_matches
from dlq_admin.errors import InvalidInput
from schemas.dlq import EntryStatus, Role
from schemas.outcome import ParkReason
from tests.unit.fakes import FixedClock

ALICE = Principal("alice", Role.OPERATOR)
ALICE_TOKEN = ConfiguredToken("alice", Role.OPERATOR, "alice-secret")
BOB_TOKEN = ConfiguredToken("bob", Role.VIEWER, "bob-secret")


class MemoryRows:
    """``SessionRows`` in a dict: the database's part, so these tests see the logic alone."""

    def __init__(self) -> None:
        self.rows: dict[str, StoredSession] = {}

    async def add_session(self, row: StoredSession) -> None:
        self.rows[row.id_hash] = row

    async def get_session(self, id_hash: str) -> StoredSession | None:
        return self.rows.get(id_hash)

    async def delete_session(self, id_hash: str) -> None:
        self.rows.pop(id_hash, None)

    async def delete_expired_sessions(self, now: datetime) -> int:
        dead = [key for key, row in self.rows.items() if row.expires_at <= now]
        for key in dead:
            del self.rows[key]
        return len(dead)


def store_of(rows: MemoryRows, *tokens: ConfiguredToken, clock: FixedClock) -> SessionStore:
    return SessionStore(rows, Authenticator(tokens or (ALICE_TOKEN,)), ttl=60, clock=clock.now)


async def test_a_session_cookie_names_a_live_session_until_it_expires() -> None:
    clock = FixedClock()
    rows = MemoryRows()
    store = store_of(rows, clock=clock)
    session, cookie = await store.create(ALICE)
    assert await store.find(cookie) == session
    clock.advance(59)
    assert await store.find(cookie) == session
    clock.advance(1)
    assert await store.find(cookie) is None
    assert rows.rows == {}  # an expired session met is deleted


async def test_a_sign_in_sweeps_expired_sessions() -> None:
    clock = FixedClock()
    rows = MemoryRows()
    store = store_of(rows, clock=clock)
    await store.create(ALICE)
    clock.advance(60)
    fresh, _ = await store.create(ALICE)
    assert list(rows.rows) == [fresh.id_hash]


async def test_a_tampered_or_unknown_cookie_names_no_session() -> None:
    clock = FixedClock()
    store = store_of(MemoryRows(), clock=clock)
    _, cookie = await store.create(ALICE)
    _, foreign = await store_of(MemoryRows(), clock=clock).create(ALICE)
    flipped = ("A" if cookie[0] != "A" else "B") + cookie[1:]
    for forged in (flipped, cookie[:-1], cookie + "A", f"{cookie}.{'0' * 64}", foreign, "", None):
        assert await store.find(forged) is None


async def test_the_stored_row_holds_neither_the_session_id_nor_the_token() -> None:
    rows = MemoryRows()
    session, cookie = await store_of(rows, clock=FixedClock()).create(ALICE)
    [row] = rows.rows.values()
    assert row.id_hash == hashlib.sha256(cookie.encode()).hexdigest() == session.id_hash
    assert (row.token_name, row.role) == ("alice", "operator")
    for value in (str(getattr(row, name)) for name in row.__dataclass_fields__):
        assert cookie not in value
        assert ALICE_TOKEN.secret not in value


async def test_a_session_is_refused_once_its_token_is_removed_rotated_or_changes_role() -> None:
    clock = FixedClock()
    rows = MemoryRows()
    _, cookie = await store_of(rows, ALICE_TOKEN, BOB_TOKEN, clock=clock).create(ALICE)
    assert await store_of(rows, ALICE_TOKEN, clock=clock).find(cookie) is not None
    removed = store_of(rows, BOB_TOKEN, clock=clock)
    rotated = store_of(rows, replace(ALICE_TOKEN, secret="new-secret"), clock=clock)
    demoted = store_of(rows, replace(ALICE_TOKEN, role=Role.VIEWER), clock=clock)
    for other_configuration in (removed, rotated, demoted):
        assert await other_configuration.find(cookie) is None
    assert await store_of(rows, ALICE_TOKEN, clock=clock).find(cookie) is not None


async def test_signing_out_ends_only_that_session() -> None:
    store = store_of(MemoryRows(), clock=FixedClock())
    first, first_cookie = await store.create(ALICE)
    second, second_cookie = await store.create(ALICE)
    assert first.csrf != second.csrf
    await store.end(first)
    assert await store.find(first_cookie) is None
    assert await store.find(second_cookie) == second


def test_csrf_tokens_must_match_exactly() -> None:
    assert csrf_matches("abc", "abc")
    for presented in (None, "", "abd", "ab", "abcd"):
        assert not csrf_matches("abc", presented)


def test_filters_read_from_text() -> None:
    assert status_of("parked") is EntryStatus.PARKED
    assert reason_of("poison") is ParkReason.POISON
    assert status_of("") is None
    assert reason_of(None) is None
    assert time_of("since", "2026-12-01T21:30") == datetime(2026, 12, 1, 21, 30, tzinfo=UTC)
    for bad in (lambda: status_of("gone"), lambda: reason_of("x"), lambda: time_of("since", "y")):
        with pytest.raises(InvalidInput):
            bad()


def test_the_edit_diff_shows_removed_and_added_lines() -> None:
    before = masked_json({"amount": 1400, "currency": "EUR"})
    after = parse_payload('{"currency": "EUR", "amount": 1999}')
    assert after.payload == {"currency": "EUR", "amount": 1999}
    lines = {(line.kind, line.text.strip()) for line in diff(before, after.pretty)}
    assert ("del", '-  "amount": 1400,') in lines
    assert ("add", '+  "amount": 1999,') in lines
    assert parse_payload("[1]").errors == ["the body must be a JSON object"]
    assert parse_payload("{nope").errors[0].startswith("not JSON")


def test_card_numbers_are_masked_in_what_the_console_shows() -> None:
    shown = masked_json({"description": "card 4242 4242 4242 4242 please"})
    assert "4242 4242" not in shown
    assert "[REDACTED-PAN]" in shown


def test_templates_escape_every_value() -> None:
    html = ENV.from_string("<p title='{{ v }}'>{{ v }}</p>").render(v="\"'><script>x</script>")
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "&#39;" in html


def test_ages_are_short() -> None:
    assert [ago(s) for s in (5, 125, 3 * 3600 + 300, 2 * 86400 + 7200)] == [
        "5s",
        "2m",
        "3h 5m",
        "2d 2h",
    ]
    assert ago(None) == "-"
