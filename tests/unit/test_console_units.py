"""The console's pure parts: sessions (signing, expiry, tampering), the CSRF comparison,
query parsing, the edit diff, card masking and escaping in templates."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dlq_admin.auth import Principal
from dlq_admin.console.inputs import reason_of, status_of, time_of
from dlq_admin.console.pages.edit import diff, parse_payload
from dlq_admin.console.render import ENV, ago, masked_json
from dlq_admin.console.sessions import SessionStore, csrf_matches
from dlq_admin.errors import InvalidInput
from schemas.dlq import EntryStatus, Role
from schemas.outcome import ParkReason

ALICE = Principal("alice", Role.OPERATOR)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_cookie_names_a_live_session_until_it_expires() -> None:
    clock = Clock()
    store = SessionStore(ttl=60, clock=clock)
    session, cookie = store.create(ALICE)
    assert store.find(cookie) == session
    clock.now += 59
    assert store.find(cookie) == session
    clock.now += 1
    assert store.find(cookie) is None
    assert store.find(cookie) is None  # and it stays gone


def test_a_tampered_or_foreign_cookie_names_no_session() -> None:
    store = SessionStore(ttl=60)
    other = SessionStore(ttl=60)
    _, cookie = store.create(ALICE)
    session_id, mac = cookie.rsplit(".", 1)
    _, foreign = other.create(ALICE)
    for forged in (
        session_id,
        f"{session_id}.{'0' * len(mac)}",
        f"{session_id}x.{mac}",
        foreign,
        "",
        None,
    ):
        assert store.find(forged) is None


def test_signing_out_ends_only_that_session() -> None:
    store = SessionStore(ttl=60)
    first, first_cookie = store.create(ALICE)
    second, second_cookie = store.create(ALICE)
    assert first.csrf != second.csrf
    store.end(first)
    assert store.find(first_cookie) is None
    assert store.find(second_cookie) == second


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
