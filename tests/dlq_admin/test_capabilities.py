"""The capability seams without a broker or database: the ``@audited`` decorator, the error
root, and ``Replay.publish_batch`` (publish claimed entries, settle, announce) over fakes."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from dlq_admin import errors
from dlq_admin.audit import Actor, AuditLog, audited
from dlq_admin.auth import Principal
from dlq_admin.errors import Conflict, DlqAdminError
from dlq_admin.paging import TokenBucket
from dlq_admin.ports import AuditRecord, OutgoingRequest
from dlq_admin.replay import Replay
from dlq_admin.rows import ClaimedEntry
from retry.errors import PublishNotConfirmed
from schemas import headers as h
from schemas.dlq import Role

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ALICE = Actor(Principal("alice", Role.OPERATOR), "10.0.0.1")


class FakeStore:
    def __init__(self, *, audit_fails: bool = False) -> None:
        self.audit: list[AuditRecord] = []
        self.audit_fails = audit_fails
        self.settled: list[tuple[list[str], list[str], str]] = []

    async def add_audit(self, record: AuditRecord) -> None:
        if self.audit_fails:
            raise RuntimeError("database down")
        self.audit.append(record)

    async def finish_many_replays(
        self, replayed: Sequence[str], failed: Sequence[str], actor: str
    ) -> datetime:
        self.settled.append((list(replayed), list(failed), actor))
        return NOW


class FakePublisher:
    """Confirms every request except those whose message id is in ``refuse``."""

    def __init__(self, refuse: set[str]) -> None:
        self.refuse = refuse
        self.requests: list[OutgoingRequest] = []
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def publish_requests(
        self, requests: Sequence[OutgoingRequest]
    ) -> list[PublishNotConfirmed | None]:
        self.requests.extend(requests)
        return [
            PublishNotConfirmed("nacked") if r.message_id in self.refuse else None for r in requests
        ]

    async def publish_events(
        self, events: Sequence[tuple[str, dict[str, Any]]]
    ) -> list[PublishNotConfirmed]:
        self.events.extend(events)
        return []


class Thing:
    """A capability with one audited mutating method."""

    def __init__(self, store: FakeStore) -> None:
        self.audit_log = AuditLog(store)  # type: ignore[arg-type]

    @audited("thing.poke", lambda target: f"t:{target}", lambda n: ("ok", {"n": n}))
    async def poke(self, actor: Actor, target: str, fail: Exception | None = None) -> int:
        if fail is not None:
            raise fail
        return 7


async def test_audited_writes_one_row_for_a_result_a_refusal_and_a_crash() -> None:
    store = FakeStore()
    thing = Thing(store)
    assert await thing.poke(ALICE, "a") == 7
    with pytest.raises(Conflict):
        await thing.poke(ALICE, "b", Conflict("not now", "busy"))
    with pytest.raises(KeyError):
        await thing.poke(ALICE, "c", KeyError("x"))
    rows = [(r.actor, r.role, r.action, r.target, r.outcome, r.status_code) for r in store.audit]
    assert rows == [
        ("alice", "operator", "thing.poke", "t:a", "ok", 200),
        ("alice", "operator", "thing.poke", "t:b", "busy", 409),
        ("alice", "operator", "thing.poke", "t:c", "error", 200),
    ]
    assert [r.detail for r in store.audit] == ['{"n":7}', "not now", "KeyError"]
    assert {r.client for r in store.audit} == {"10.0.0.1"}


async def test_an_audit_failure_never_hides_the_result() -> None:
    assert await Thing(FakeStore(audit_fails=True)).poke(ALICE, "a") == 7


def test_every_dlq_admin_error_has_one_root() -> None:
    classes = [
        c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__
    ]
    exceptions = [c for c in classes if issubclass(c, BaseException)]
    assert len(exceptions) >= 10
    assert all(issubclass(c, DlqAdminError) for c in exceptions)
    assert issubclass(errors.TokenConfigError, ValueError)


def _claimed(n: int) -> ClaimedEntry:
    headers = orjson.dumps({h.TRACEPARENT: f"00-{n:032x}-{n:016x}-01", h.ATTEMPTS: 5}).decode()
    return ClaimedEntry(f"e{n}", f"p{n}", None, f'{{"payment_id": "p{n}"}}', headers)


async def test_publish_batch_settles_exactly_the_confirmed_entries_and_announces_them() -> None:
    store = FakeStore()
    publisher = FakePublisher(refuse={"p1", "p3"})
    observed: list[tuple[str, str]] = []
    replay = Replay(
        store,  # type: ignore[arg-type]
        publisher,  # type: ignore[arg-type]
        AuditLog(store),  # type: ignore[arg-type]
        bucket=TokenBucket(100_000),
        stale_replay_after=timedelta(minutes=5),
        clock=lambda: NOW,
        observe=lambda kind, label, _value: observed.append((kind, label)),
    )
    published = await replay.publish_batch(ALICE, [_claimed(n) for n in range(5)])

    assert published.replayed == ["e0", "e2", "e4"]
    assert [f.id for f in published.failed] == ["e1", "e3"]
    assert all("did not confirm" in f.error for f in published.failed)
    assert store.settled == [(["e0", "e2", "e4"], ["e1", "e3"], "alice")]
    first = publisher.requests[0]
    assert first.body == b'{"payment_id": "p0"}'
    assert first.headers == {h.REPLAY_OF: "e0", h.TRACEPARENT: f"00-{0:032x}-{0:016x}-01"}
    await replay.announced()  # the events go out while the caller goes on
    assert [e[1]["dlq_entry_id"] for e in publisher.events] == ["e0", "e2", "e4"]
    assert sorted(observed) == [("replay", "failed")] * 2 + [("replay", "replayed")] * 3
