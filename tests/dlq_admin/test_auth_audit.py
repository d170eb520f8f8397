"""Auth (named tokens, two roles), the audit log, start-up refusal and the OpenAPI document."""

from __future__ import annotations

import hmac
import logging
import os
import subprocess
import sys
import uuid
from typing import Any

import pytest

from dlq_admin.runtime import AdminRuntime
from processor.config import ConfigError
from tests.dlq_admin.conftest import OPERATOR, OPERATOR_TOKEN, VIEWER, VIEWER_TOKEN, Admin
from tests.dlq_admin.helpers import park, request_body
from tests.support.processes import ROOT


async def _routes(admin: Admin) -> list[tuple[str, str]]:
    """Every documented (method, path) but the probes, path parameters filled in."""
    spec = (await admin.client.get("/openapi.json")).json()
    found = []
    for path, operations in spec["paths"].items():
        if path in ("/healthz", "/readyz"):
            continue
        path = path.replace("{entry_id}", str(uuid.uuid4()))
        path = path.replace("{payment_id}", str(uuid.uuid4()))
        path = path.replace("{job_id}", str(uuid.uuid4()))
        found += [(method.upper(), path) for method in operations]
    return found


async def test_every_route_but_healthz_needs_a_valid_bearer_token(admin: Admin) -> None:
    """No token, an unknown token or another scheme is a 401 with WWW-Authenticate everywhere."""
    routes = await _routes(admin)
    assert len(routes) == 17
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {OPERATOR_TOKEN}"},
        {"Authorization": "Bearer"},
        {"Authorization": f"Bearer {OPERATOR_TOKEN}x"},
    ):
        for method, path in routes:
            response = await admin.client.request(method, path, headers=headers, json={})
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json()["code"] == "unauthenticated"
    response = await admin.client.post(
        "/dlq/replay", content=b"{broken", headers={"content-type": "application/json"}
    )
    assert response.status_code == 401  # not a 422: anonymous callers learn nothing
    assert (await admin.client.get("/healthz")).json() == {"status": "ok"}


async def test_a_viewer_reads_but_every_mutating_route_is_403(admin: Admin) -> None:
    """Viewer tokens list and show; replay, bulk replay, discard and bulk discard are 403."""
    await park(admin.connection, admin.names)
    await admin.wait_handled(1)
    [entry] = await admin.entries()
    url = f"/dlq/messages/{entry['id']}"
    assert (await admin.client.get(url, headers=VIEWER)).status_code == 200
    for method, path, body in (
        ("POST", f"{url}/replay", None),
        ("DELETE", url, None),
        ("POST", "/dlq/replay", {"ids": [entry["id"]]}),
        ("POST", "/dlq/discard", {"reason": "gateway_rejected"}),
    ):
        response = await admin.client.request(method, path, json=body, headers=VIEWER)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["code"] == "forbidden"
    assert (await admin.get(url))["status"] == "parked"


async def test_admin_token_alone_configures_one_operator_named_admin(start_admin) -> None:
    """PAYPROC_ADMIN_TOKEN without named tokens is an operator that audits as 'admin'."""
    token = f"solo-{uuid.uuid4().hex}"
    admin = await start_admin(admin_tokens=None, admin_token=token)
    await park(admin.connection, admin.names)
    await admin.wait_handled(1)
    headers = {"Authorization": f"Bearer {token}"}
    [entry] = (await admin.client.get("/dlq/messages", headers=headers)).json()["items"]
    response = await admin.client.post(f"/dlq/messages/{entry['id']}/replay", headers=headers)
    assert response.status_code == 200
    assert response.json()["replayed_by"] == "admin"
    assert (await admin.client.get("/dlq/stats", headers=VIEWER)).status_code == 401


async def test_tokens_are_compared_in_constant_time_against_every_token(
    admin: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each request compares equal-length digests with hmac.compare_digest, with no early exit."""
    calls: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    for headers, status in ((OPERATOR, 200), (VIEWER, 200), ({"Authorization": "Bearer x"}, 401)):
        calls.clear()
        response = await admin.client.get("/dlq/stats", headers=headers)
        assert response.status_code == status
        assert calls == [(32, 32), (32, 32)]  # both configured tokens, every time


async def test_tokens_never_appear_in_logs_or_the_audit_log(
    admin: Admin, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither valid nor rejected tokens are written to logs or audit rows."""
    caplog.set_level(logging.DEBUG)
    rejected = f"guess-{uuid.uuid4().hex}"
    await park(admin.connection, admin.names)
    await admin.wait_handled(1)
    [entry] = await admin.entries()
    for headers in (OPERATOR, VIEWER, {"Authorization": f"Bearer {rejected}"}):
        await admin.client.post(f"/dlq/messages/{entry['id']}/replay", headers=headers)
        await admin.client.get("/dlq/messages", headers=headers)
    audit = (await admin.client.get("/audit", headers=VIEWER)).text
    for secret in (OPERATOR_TOKEN, VIEWER_TOKEN, rejected):
        assert secret not in caplog.text
        assert secret not in audit
    assert "alice" in audit


async def test_the_audit_log_records_every_mutating_and_every_refused_call(
    admin: Admin,
) -> None:
    """Who, when, what, target and outcome of replays, discards and refusals, newest first."""
    body = request_body()
    await park(admin.connection, admin.names, body)
    await park(admin.connection, admin.names)
    await admin.wait_handled(2)
    first, second = (e["id"] for e in await admin.entries())

    c = admin.client
    await c.post(f"/dlq/messages/{first}/replay", headers=OPERATOR)  # ok
    await c.post(f"/dlq/messages/{first}/replay", headers=OPERATOR)  # 409
    await c.post(f"/dlq/messages/{second}/replay", headers=VIEWER)  # 403
    await c.delete(f"/dlq/messages/{second}")  # 401
    await c.post(
        f"/dlq/messages/{second}/replay",
        json={"payload": {**body, "amount": 0}},
        headers=OPERATOR,
    )  # 422 from the edit validation
    await c.post("/dlq/replay", json={"reason": "nope"}, headers=OPERATOR)  # 422 from FastAPI
    await c.delete(f"/dlq/messages/{second}", params={"note": "test"}, headers=OPERATOR)  # ok
    await c.post("/dlq/replay", json={"reason": "poison", "dry_run": True}, headers=OPERATOR)
    await c.get("/dlq/stats", headers={"Authorization": "Bearer nope"})  # 401 on a read

    page = (await c.get("/audit", params={"limit": 50}, headers=VIEWER)).json()
    rows = [
        (a["actor"], a["action"], a["target"], a["outcome"], a["status_code"])
        for a in page["items"]
    ]
    assert rows == [
        (None, "dlq.stats", None, "unauthenticated", 401),
        ("alice", "dlq.bulk_replay", "reason:poison", "dry_run", 200),
        ("alice", "dlq.discard", second, "ok", 200),
        ("alice", "dlq.bulk_replay", None, "invalid_request", 422),
        ("alice", "dlq.replay", second, "invalid_payload", 422),
        (None, "dlq.discard", second, "unauthenticated", 401),
        ("bob", "dlq.replay", second, "forbidden", 403),
        ("alice", "dlq.replay", first, "already_replayed", 409),
        ("alice", "dlq.replay", first, "ok", 200),
    ]
    assert all(a["at"] for a in page["items"])
    assert page["items"][2]["detail"] == '{"note":"test"}'
    assert "amount" in page["items"][4]["detail"]

    alice = (await c.get("/audit", params={"actor": "alice", "limit": 2}, headers=VIEWER)).json()
    assert [a["outcome"] for a in alice["items"]] == ["dry_run", "ok"]
    older = (
        await c.get(
            "/audit",
            params={"actor": "alice", "limit": 2, "cursor": alice["next_cursor"]},
            headers=VIEWER,
        )
    ).json()
    assert [a["outcome"] for a in older["items"]] == ["invalid_request", "invalid_payload"]


def _run_admin(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PAYPROC_ADMIN")}
    return subprocess.run(
        [sys.executable, "-m", "processor", "admin", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_payproc_admin_refuses_to_start_without_a_token() -> None:
    """With no token configured `payproc admin` exits 2 with one line naming PAYPROC_ADMIN_TOKEN."""
    result = _run_admin({"PAYPROC_ADMIN_BIND": "127.0.0.1:0"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "PAYPROC_ADMIN_TOKEN" in lines[0]

    secret = f"s3cret-{uuid.uuid4().hex}"
    result = _run_admin({"PAYPROC_ADMIN_TOKENS": f"carol:superuser:{secret}"})
    assert result.returncode == 2
    assert "PAYPROC_ADMIN_TOKENS" in result.stderr
    assert secret not in result.stderr + result.stdout


async def test_the_runtime_refuses_to_start_without_a_token(admin_settings) -> None:
    """Building the admin in-process without tokens raises before connecting anywhere."""
    runtime = AdminRuntime(admin_settings(admin_tokens=None, admin_token="   "))
    with pytest.raises(ConfigError, match="PAYPROC_ADMIN_TOKEN"):
        await runtime.start()
    assert runtime.connection is None


async def test_openapi_documents_every_route_and_docs_are_served(admin: Admin) -> None:
    """/openapi.json has each route with models, error responses and bearer auth; /docs works."""
    spec: dict[str, Any] = (await admin.client.get("/openapi.json")).json()
    expected = {
        ("/healthz", "get"): "Health",
        ("/dlq/messages", "get"): "DlqPage",
        ("/dlq/messages/{entry_id}", "get"): "DlqEntryDetail",
        ("/dlq/messages/{entry_id}", "delete"): "DlqEntrySummary",
        ("/dlq/messages/{entry_id}/replay", "post"): "ReplayResult",
        ("/dlq/stats", "get"): "DlqStats",
        ("/dlq/groups", "get"): "DlqGroups",
        ("/dlq/replay", "post"): "BulkReplayResult",
        ("/dlq/replay-jobs", "get"): "ReplayJobPage",
        ("/dlq/replay-jobs", "post"): "ReplayJobDryRun",
        ("/dlq/replay-jobs/{job_id}", "get"): "ReplayJobView",
        ("/dlq/replay-jobs/{job_id}/pause", "post"): "ReplayJobView",
        ("/dlq/replay-jobs/{job_id}/resume", "post"): "ReplayJobView",
        ("/dlq/replay-jobs/{job_id}/cancel", "post"): "ReplayJobView",
        ("/dlq/discard", "post"): "BulkDiscardResult",
        ("/payments/{payment_id}", "get"): "PaymentView",
        ("/audit", "get"): "AuditPage",
        ("/readyz", "get"): "Readiness",
    }
    documented = {(p, m) for p, ops in spec["paths"].items() for m in ops}
    assert documented == set(expected) | {("/metrics", "get")}
    metrics = spec["paths"]["/metrics"]["get"]
    assert "text/plain" in metrics["responses"]["200"]["content"]
    assert metrics["security"] == [{"bearer": []}]
    for (path, method), model in expected.items():
        op = spec["paths"][path][method]
        ok = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        assert ok.endswith(f"/{model}"), (path, method)
        assert op.get("summary")
        if path not in ("/healthz", "/readyz"):
            assert op["security"] == [{"bearer": []}]
            assert op["responses"]["401"]["content"]["application/json"]["schema"]["$ref"].endswith(
                "/ErrorResponse"
            )
    created = {("/dlq/replay-jobs", "201"), ("/dlq/replay", "202")}
    for path, status in created:
        answer = spec["paths"][path]["post"]["responses"][status]["content"]["application/json"]
        assert answer["schema"]["$ref"].endswith("/ReplayJobView"), path
    for path, selection in (("/dlq/replay", "ReplaySelection"), ("/dlq/discard", "BulkSelection")):
        body = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        assert body["schema"]["$ref"].endswith(f"/{selection}")
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    docs = await admin.client.get("/docs")
    assert docs.status_code == 200
    assert "swagger-ui" in docs.text
