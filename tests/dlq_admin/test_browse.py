"""Browse and group: newest-first pages with a stable cursor, filters, bad input, 100k entries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from dlq_admin.paging import encode_entry_cursor
from dlq_admin.parse import fingerprint_of
from schemas.dlq_tables import DlqEntryRow
from schemas.outcome import ParkReason
from tests.dlq_admin.conftest import OPERATOR, VIEWER, Admin
from tests.dlq_admin.helpers import park, request_body

BASE = datetime(2030, 1, 1, tzinfo=UTC)


async def _park_series(admin: Admin, count: int, start: int = 0, **fields: Any) -> list[str]:
    """Park ``count`` requests one second apart from BASE + ``start`` s; returns payment ids."""
    ids = []
    for i in range(start, start + count):
        body = request_body()
        await park(
            admin.connection, admin.names, body, parked_at=BASE + timedelta(seconds=i), **fields
        )
        ids.append(body["payment_id"])
    return ids


async def _all_pages(admin: Admin, limit: int, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await admin.get(
            "/dlq/messages", limit=limit, **params, **({"cursor": cursor} if cursor else {})
        )
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


async def test_pages_are_newest_first_and_the_cursor_is_stable_across_inserts(
    admin: Admin,
) -> None:
    """Entries indexed while an operator pages do not shift, repeat or hide the later pages."""
    payment_ids = await _park_series(admin, 25)
    await admin.wait_handled(25)

    first = await admin.get("/dlq/messages", limit=10)
    assert [i["payment_id"] for i in first["items"]] == payment_ids[::-1][:10]
    assert first["next_cursor"]

    newer = await _park_series(admin, 5, start=100)
    await admin.wait_handled(30)

    rest: list[dict[str, Any]] = []
    cursor = first["next_cursor"]
    while cursor:
        page = await admin.get("/dlq/messages", limit=10, cursor=cursor)
        rest += page["items"]
        cursor = page["next_cursor"]
    seen = [i["payment_id"] for i in first["items"] + rest]
    assert seen == payment_ids[::-1]
    assert not set(newer) & set(seen)

    everything = await _all_pages(admin, 7)
    assert [i["payment_id"] for i in everything] == newer[::-1] + payment_ids[::-1]


async def test_each_filter_narrows_the_list(admin: Admin) -> None:
    """reason, status, payment_id, merchant_id, since/until and group each select what they say."""
    rejected = await _park_series(admin, 3, merchant_id="m_a")
    exhausted = await _park_series(
        admin,
        2,
        start=10,
        reason="retries_exhausted",
        error_code="http_503",
        http_status=503,
        merchant_id="m_b",
    )
    await admin.wait_handled(5)

    def pids(items: list[dict[str, Any]]) -> set[str]:
        return {i["payment_id"] for i in items}

    assert pids(await admin.entries(reason="gateway_rejected")) == set(rejected)
    assert pids(await admin.entries(reason="retries_exhausted")) == set(exhausted)
    assert pids(await admin.entries(merchant_id="m_b")) == set(exhausted)
    assert pids(await admin.entries(payment_id=rejected[1])) == {rejected[1]}
    window = await admin.entries(
        since=(BASE + timedelta(seconds=1)).isoformat(),
        until=(BASE + timedelta(seconds=10)).isoformat(),
    )
    assert pids(window) == {rejected[1], rejected[2]}
    assert pids(await admin.entries(group="retries_exhausted|http_503|503|-")) == set(exhausted)

    [one] = await admin.entries(payment_id=rejected[0])
    response = await admin.client.delete(f"/dlq/messages/{one['id']}", headers=OPERATOR)
    assert response.status_code == 200
    assert pids(await admin.entries(status="discarded")) == {rejected[0]}
    assert pids(await admin.entries(status="parked")) == set(rejected[1:]) | set(exhausted)
    assert pids(await admin.entries(status="parked", reason="gateway_rejected")) == set(
        rejected[1:]
    )


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"status": "lost"}, "status"),
        ({"reason": "because"}, "reason"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"since": "last tuesday"}, "since"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "W10"}, "cursor"),
        ({"since": "2030-01-02T00:00:00Z", "until": "2030-01-01T00:00:00Z"}, "since"),
        ({"payment_id": "a\x00b"}, "payment_id"),
    ],
)
async def test_bad_filters_are_a_422_with_a_message_naming_the_parameter(
    admin: Admin, params: dict[str, Any], named: str
) -> None:
    """Invalid filters answer 422 with a readable message that names the parameter."""
    response = await admin.client.get("/dlq/messages", params=params, headers=VIEWER)
    assert response.status_code == 422, response.text
    body = response.json()
    assert named in body["detail"]
    assert body["code"] == "invalid_request"


async def test_unknown_ids_are_404(admin: Admin) -> None:
    """Unknown entry and payment ids answer 404 on every route that takes an id."""
    missing = str(uuid.uuid4())
    for method, path in (
        ("GET", f"/dlq/messages/{missing}"),
        ("POST", f"/dlq/messages/{missing}/replay"),
        ("DELETE", f"/dlq/messages/{missing}"),
        ("GET", f"/payments/{missing}"),
    ):
        response = await admin.client.request(method, path, headers=OPERATOR)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["code"] == "not_found"


async def test_groups_count_parked_entries_by_failure_fingerprint(admin: Admin) -> None:
    """Groups gather parked entries by reason + error code/status + exception, with counts."""
    await _park_series(admin, 3, error_code="amount_invalid", http_status=422)
    await _park_series(
        admin, 2, start=10, reason="retries_exhausted", error_code="http_503", http_status=503
    )
    await _park_series(
        admin,
        1,
        start=20,
        reason="poison",
        error_code="processing_crashed",
        http_status=None,
        exception="KeyError",
    )
    await admin.wait_handled(6)

    groups = await admin.get("/dlq/groups")
    assert groups["status"] == "parked"
    got = {g["fingerprint"]: g for g in groups["items"]}
    assert [g["count"] for g in groups["items"]] == [3, 2, 1]
    rejected = got["gateway_rejected|amount_invalid|422|-"]
    assert rejected["reason"] == "gateway_rejected"
    assert rejected["first_seen"].startswith("2030-01-01T00:00:00")
    assert rejected["last_seen"].startswith("2030-01-01T00:00:02")
    poison = got["poison|processing_crashed|-|KeyError"]
    assert poison["exception_type"] == "KeyError"
    assert poison["http_status"] is None
    only = await admin.get("/dlq/groups", reason="retries_exhausted")
    assert [g["fingerprint"] for g in only["items"]] == ["retries_exhausted|http_503|503|-"]


async def test_every_filter_and_a_deep_cursor_answer_right_over_a_large_dlq(admin: Admin) -> None:
    """Over 20,000 entries every filter finds its entries, a deep cursor resumes exactly after
    the entry it names, and stats count them all. (How fast: ``make bench``, admin rows.)"""
    total = 20_000
    engine = admin.runtime.engine
    assert engine is not None
    table = DlqEntryRow.__table__  # type: ignore[attr-defined]
    reasons = list(ParkReason)
    now = datetime.now(UTC)
    rows = []
    for i in range(total):
        reason = reasons[i % 4]
        code = f"code_{i % 7}"
        rows.append(
            {
                "id": str(uuid.UUID(int=i + 1)),
                "namespace": admin.names.namespace,
                "dedup_key": f"park:bulk-{i}",
                "status": "parked" if i % 10 else "discarded",
                "reason": reason.value,
                "fingerprint": fingerprint_of(reason, code, 422, None),
                "error_code": code,
                "error_message": "bulk",
                "http_status": 422,
                "attempts": 1,
                "payment_id": str(uuid.UUID(int=10**9 + i)),
                "merchant_id": f"m_{i % 500}",
                "dead_lettered_at": now - timedelta(seconds=total - i),
                "ingested_at": now,
                "body": orjson.dumps(request_body()).decode(),
                "body_bytes": 150,
                "headers": "{}",
                "updated_at": now,
            }
        )
    async with engine.begin() as conn:
        for start in range(0, len(rows), 10_000):
            await conn.execute(table.insert(), rows[start : start + 10_000])

    deep = encode_entry_cursor(now - timedelta(seconds=total - 5_000), str(uuid.UUID(int=5_001)))
    queries: list[tuple[str, dict[str, Any]]] = [
        ("/dlq/messages", {"limit": 100}),
        ("/dlq/messages", {"limit": 100, "status": "parked"}),
        ("/dlq/messages", {"limit": 100, "reason": "poison"}),
        ("/dlq/messages", {"limit": 100, "status": "discarded", "reason": "invalid_message"}),
        ("/dlq/messages", {"limit": 100, "merchant_id": "m_42"}),
        ("/dlq/messages", {"limit": 100, "payment_id": str(uuid.UUID(int=10**9 + 77))}),
        ("/dlq/messages", {"limit": 100, "group": "poison|code_3|422|-"}),
        (
            "/dlq/messages",
            {
                "limit": 100,
                "since": (now - timedelta(seconds=15_000)).isoformat(),
                "until": (now - timedelta(seconds=10_000)).isoformat(),
            },
        ),
        ("/dlq/messages", {"limit": 100, "cursor": deep}),
        ("/dlq/messages", {"limit": 100, "status": "parked", "cursor": deep}),
        ("/dlq/groups", {}),
        ("/dlq/stats", {}),
    ]
    for path, params in queries:
        data = await admin.get(path, **params)
        if path == "/dlq/messages":
            assert data["items"], params
            for item in data["items"]:
                for name in ("status", "reason", "merchant_id", "payment_id"):
                    if name in params:
                        assert item[name] == params[name], (params, item)
    page = await admin.get("/dlq/messages", limit=100, cursor=deep)
    assert page["items"][0]["id"] == str(uuid.UUID(int=5_000))
    stats = await admin.get("/dlq/stats")
    assert stats["total"] == total
    assert stats["parked"] == total * 9 // 10
