"""The pure parts of the admin: token bucket, cursors, token settings, parsing parked messages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from dlq_admin.auth import Authenticator, bearer_token, configured_tokens
from dlq_admin.errors import Forbidden, InvalidInput, TokenConfigError, Unauthenticated
from dlq_admin.paging import (
    TokenBucket,
    decode_entry_cursor,
    decode_id_cursor,
    encode_entry_cursor,
    encode_id_cursor,
)
from dlq_admin.parse import parse_parked
from dlq_admin.ports import RawMessage
from dlq_admin.validation import validate_edit
from schemas import headers as h
from schemas.dlq import Role
from schemas.outcome import ParkReason

NOW = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_token_bucket_allows_a_burst_then_paces_at_the_rate() -> None:
    """At 100/s with a burst of 10, 30 acquisitions take 0.2 s of (fake) time."""
    fake = FakeTime()
    bucket = TokenBucket(100, 10, clock=fake.clock, sleep=fake.sleep)
    for _ in range(30):
        await bucket.acquire()
    assert fake.now == pytest.approx(0.2)
    assert len(fake.slept) == 20


async def test_token_bucket_hands_out_batches_of_at_most_a_burst_at_the_rate() -> None:
    """At 100/s with a burst of 10, taking 35 tokens in batches wakes up once per burst and
    takes 0.25 s of (fake) time, like 35 single acquisitions."""
    fake = FakeTime()
    bucket = TokenBucket(100, 10, clock=fake.clock, sleep=fake.sleep)
    granted = []
    while sum(granted) < 35:
        granted.append(await bucket.take(35 - sum(granted)))
    assert granted == [10, 10, 10, 5]
    assert fake.now == pytest.approx(0.25)
    assert len(fake.slept) == 3
    assert await bucket.take(0) == 0


async def test_token_bucket_take_and_acquire_share_one_budget() -> None:
    """Tokens taken in a batch are gone for single acquisitions (one rate per process)."""
    fake = FakeTime()
    bucket = TokenBucket(100, 10, clock=fake.clock, sleep=fake.sleep)
    assert await bucket.take(8) == 8
    await bucket.acquire()
    await bucket.acquire()
    assert fake.now == 0.0
    await bucket.acquire()
    assert fake.now == pytest.approx(0.01)


def test_entry_cursors_round_trip_and_reject_garbage() -> None:
    """A cursor decodes to what was encoded; anything else is an InvalidInput naming cursor."""
    cursor = encode_entry_cursor(NOW, "abc")
    decoded = decode_entry_cursor(cursor)
    assert (decoded.at, decoded.id) == (NOW, "abc")
    assert decode_id_cursor(encode_id_cursor(42)) == 42
    for garbage in ("", "!!!", "W10", "WyJ4Il0", encode_id_cursor(1), "a" * 7):
        with pytest.raises(InvalidInput, match="cursor"):
            decode_entry_cursor(garbage)
    with pytest.raises(InvalidInput):
        decode_id_cursor(cursor)


def test_named_tokens_parse_and_bad_specs_are_refused_without_echoing_tokens() -> None:
    """name:role:token items parse; bad roles, names, duplicates and no token are refused."""
    tokens = configured_tokens("solo", "alice:operator:t-1, bob:viewer:t:2")
    assert [(t.name, t.role, t.secret) for t in tokens] == [
        ("alice", Role.OPERATOR, "t-1"),
        ("bob", Role.VIEWER, "t:2"),
        ("admin", Role.OPERATOR, "solo"),
    ]
    for spec in (
        "alice:root:secret1",
        "al ice:viewer:secret1",
        "alice:viewer:",
        "a:viewer:x1,a:operator:x2",
        "a:viewer:same,b:viewer:same",
        "justatoken",
    ):
        with pytest.raises(TokenConfigError) as caught:
            configured_tokens(None, spec)
        assert "secret1" not in str(caught.value)
    with pytest.raises(TokenConfigError, match="PAYPROC_ADMIN_TOKEN"):
        configured_tokens(None, None)
    with pytest.raises(TokenConfigError, match="reserved"):
        configured_tokens("x1", "admin:viewer:x2")


def test_bearer_tokens_authenticate_to_a_named_principal_with_a_role() -> None:
    """Only 'Bearer <known token>' authenticates; a viewer may not act as operator."""
    auth = Authenticator(configured_tokens(None, "alice:operator:tok-a,bob:viewer:tok-b"))
    assert auth.authenticate("Bearer tok-a").name == "alice"
    assert auth.authenticate("bearer   tok-b ").role is Role.VIEWER
    for header in (None, "", "tok-a", "Basic tok-a", "Bearer", "Bearer tok-", "Bearer tok-ab"):
        with pytest.raises(Unauthenticated):
            auth.authenticate(header)
    with pytest.raises(Forbidden):
        auth.authorize(auth.authenticate("Bearer tok-b"), Role.OPERATOR)
    assert bearer_token("Bearer x y") == "x y"


def test_worker_headers_become_an_entry_with_a_fingerprint_and_park_key() -> None:
    """Reason, error, status, exception and the park id come from the worker's headers."""
    raw = RawMessage(
        body=b'{"payment_id": "p1", "merchant_id": "m1"}',
        headers={
            h.PARK_ID: "pk-1",
            h.REASON: "poison",
            h.ERROR_CODE: "processing_crashed",
            h.ERROR_MESSAGE: "KeyError: 'x'",
            h.EXCEPTION_TYPE: "KeyError",
            h.ATTEMPTS: 2,
            h.PARKED_AT: "2030-05-01T10:00:00+02:00",
            h.REPLAY_OF: "old-entry",
        },
    )
    entry = parse_parked(raw, "e1", NOW)
    assert entry.reason is ParkReason.POISON
    assert entry.fingerprint == "poison|processing_crashed|-|KeyError"
    assert entry.dedup_key == "park:pk-1"
    assert entry.dead_lettered_at == datetime(2030, 5, 1, 8, 0, tzinfo=UTC)
    assert (entry.payment_id, entry.merchant_id, entry.attempts) == ("p1", "m1", 2)
    assert entry.replay_of == "old-entry"


def test_broker_dead_letters_are_poison_with_a_key_stable_across_redeliveries() -> None:
    """x-death delivery_limit -> poison; x-delivery-count does not change the de-dup key."""
    death = {"reason": "delivery_limit", "queue": "n.requests", "time": NOW, "count": 1}
    first = parse_parked(RawMessage(b"{}", {"x-death": [death]}), "e1", NOW)
    again = parse_parked(
        RawMessage(b"{}", {"x-death": [death], h.BROKER_DELIVERY_COUNT: 3}), "e2", NOW
    )
    later = parse_parked(RawMessage(b"{}", {"x-death": [{**death, "count": 2}]}), "e3", NOW)
    assert first.reason is ParkReason.POISON
    assert first.error_code == "delivery_limit"
    assert first.dedup_key == again.dedup_key != later.dedup_key
    assert first.dead_lettered_at == NOW
    rejected = parse_parked(
        RawMessage(b"x", {"x-death": [{**death, "reason": "rejected"}]}), "e4", NOW
    )
    assert rejected.reason is ParkReason.POISON


def test_edits_are_validated_like_the_worker_and_keep_the_payment_id() -> None:
    """validate_edit accepts a valid request and names the field of an invalid one."""
    pid = str(uuid.uuid4())
    good = {
        "payment_id": pid,
        "amount": 5,
        "currency": "EUR",
        "merchant_id": "m",
        "payment_method": "pm_x",
    }
    assert validate_edit(good, pid).amount == 5
    assert validate_edit(good, "not-a-uuid").key == pid
    with pytest.raises(InvalidInput) as caught:
        validate_edit({**good, "amount": "5"}, pid)
    assert caught.value.problems[0].loc == ("body", "payload", "amount")
    with pytest.raises(InvalidInput, match="payment_id"):
        validate_edit({**good, "payment_id": str(uuid.uuid4())}, pid)
