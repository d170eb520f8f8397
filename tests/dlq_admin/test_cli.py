"""``payproc admin`` as a real process and ``payproc dlq ...`` talking to it over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import pytest
from aio_pika.abc import AbstractRobustConnection

from processor.cli import main
from retry.names import Names
from tests.dlq_admin.conftest import OPERATOR_TOKEN, TOKENS, VIEWER_TOKEN
from tests.dlq_admin.helpers import eventually, park, record_succeeded, request_body
from tests.support.processes import ROOT

_LISTENING = re.compile(r"admin API listening on (http://\S+)")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYPROC_ADMIN")}
    env.update({"COLUMNS": "220", "PYTHONUNBUFFERED": "1"}, **extra)
    return env


@dataclass
class AdminProcess:
    url: str
    process: asyncio.subprocess.Process
    log: list[str] = field(default_factory=list)

    async def cli(self, *args: str, token: str | None = OPERATOR_TOKEN) -> tuple[int, str, str]:
        """Run `payproc dlq ARGS --url URL --token TOKEN` in-process (a thread), over real HTTP."""
        argv = ["dlq", *args, "--url", self.url]
        if token is not None:
            argv += ["--token", token]
        return await asyncio.to_thread(_main, argv)

    async def subprocess(self, *args: str, token: str) -> tuple[int, str, str]:
        """Run the real `python -m processor dlq ARGS` with URL and token from the environment."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "processor",
            "dlq",
            *args,
            cwd=ROOT,
            env=_env(PAYPROC_ADMIN_URL=self.url, PAYPROC_ADMIN_TOKEN=token),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    async def json(self, *args: str, token: str | None = OPERATOR_TOKEN) -> Any:
        code, out, err = await self.cli(*args, "--json", token=token)
        assert code == 0, (args, out, err, self.log[-20:])
        return json.loads(out)


_CLI_LOCK = threading.Lock()


def _main(argv: list[str]) -> tuple[int, str, str]:
    """``processor.cli.main`` with stdout/stderr captured (one call at a time)."""
    out, err = io.StringIO(), io.StringIO()
    env = _env()  # no PAYPROC_ADMIN_* from the caller; wide rich tables as in subprocesses
    with (
        _CLI_LOCK,
        mock.patch.dict(os.environ, env, clear=True),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
async def admin_process(
    topology: Names, amqp_url: str, database_url: str
) -> AsyncIterator[AdminProcess]:
    """`payproc admin --bind 127.0.0.1:0` in its own process, stopped with SIGTERM after."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "processor",
        "admin",
        "--bind",
        "127.0.0.1:0",
        cwd=ROOT,
        env=_env(
            PAYPROC_AMQP_URL=amqp_url,
            PAYPROC_DATABASE_URL=database_url,
            PAYPROC_NAMESPACE=topology.namespace,
            PAYPROC_ADMIN_TOKENS=TOKENS,
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    log: list[str] = []
    url = None
    async with asyncio.timeout(30):
        while url is None:
            line = (await proc.stderr.readline()).decode()
            if not line:
                pytest.fail("payproc admin exited during start-up:\n" + "".join(log))
            log.append(line)
            match = _LISTENING.search(line)
            url = match.group(1) if match else None

    async def drain() -> None:
        assert proc.stderr is not None
        while line := await proc.stderr.readline():
            log.append(line.decode())

    drainer = asyncio.create_task(drain())
    try:
        yield AdminProcess(url, proc, log)
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
        await drainer
    joined = "".join(log)
    assert "Traceback" not in joined, joined
    for token in (OPERATOR_TOKEN, VIEWER_TOKEN):
        assert token not in joined


def test_dlq_and_admin_help_work() -> None:
    """`payproc dlq --help` and `payproc admin --help` load the admin's CLI (no ImportError)."""
    for args, expect in (
        (["dlq", "--help"], ["list", "show", "stats", "groups", "replay", "discard"]),
        (["admin", "--help"], ["--bind", "--no-ingest"]),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "processor", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            env=_env(),
        )
        assert result.returncode == 0, result.stderr
        for word in expect:
            assert word in result.stdout


async def test_cli_lists_shows_groups_replays_and_discards_against_a_real_server(
    admin_process: AdminProcess, connection: AbstractRobustConnection, topology: Names
) -> None:
    """Every `payproc dlq` command works over HTTP, as tables and as --json."""
    cli = admin_process
    first = await park(connection, topology, request_body(merchant_id="m_cli"))
    second = await park(connection, topology, request_body(merchant_id="m_cli"))
    stats = await eventually(lambda: cli.json("stats"), lambda s: s["total"] == 2)
    assert stats["parked_by_reason"] == {"gateway_rejected": 2}

    page = await cli.json("list", "--merchant-id", "m_cli")
    ids = {i["payment_id"]: i["id"] for i in page["items"]}
    assert set(ids) == {first["payment_id"], second["payment_id"]}
    one, two = ids[first["payment_id"]], ids[second["payment_id"]]

    code, out, err = await cli.subprocess(
        "list", "--reason", "gateway_rejected", token=VIEWER_TOKEN
    )
    assert code == 0, err
    assert "DLQ entries (2, newest first)" in out
    assert one in out

    shown = await cli.json("show", one)
    assert shown["body"] == first
    code, out, _ = await cli.cli("show", one)
    assert code == 0
    assert first["payment_id"] in out
    assert "amount_invalid" in out

    code, out, _ = await cli.cli("stats")
    assert code == 0
    assert "gateway_rejected" in out
    assert "waiting in" in out

    groups = await cli.json("groups")
    assert [(g["fingerprint"], g["count"]) for g in groups["items"]] == [
        ("gateway_rejected|amount_invalid|422|-", 2)
    ]
    code, out, _ = await cli.cli("groups")
    assert "gateway_rejected|amount_invalid|422|-" in out

    dry = await cli.json("replay", "--group", "gateway_rejected|amount_invalid|422|-", "--dry-run")
    assert dry["would_replay"] == 2
    window = ("--since", "2000-01-01T00:00:00Z", "--until", "2999-01-01T00:00:00Z")
    dry = await cli.json("replay", "--merchant-id", "m_cli", *window, "--dry-run")
    assert set(dry["ids"]) == {one, two}
    dry = await cli.json("replay", "--merchant-id", "m_other", "--dry-run")
    assert (dry["would_replay"], dry["ids"]) == (0, [])

    bad = json.dumps({**first, "amount": -1})
    code, _, err = await cli.cli("replay", one, "--payload", bad)
    assert code == 1
    assert "422" in err
    assert "amount" in err

    replayed = await cli.json("replay", one)
    assert replayed["status"] == "replayed"
    code, _, err = await cli.cli("replay", one)
    assert code == 1
    assert "409" in err

    code, _, err = await cli.cli("discard", two, token=VIEWER_TOKEN)
    assert code == 1
    assert "403" in err
    code, out, _ = await cli.cli("discard", two, "--note", "customer cancelled")
    assert code == 0
    assert "discarded" in out

    audit = await cli.json("audit", "--actor", "alice")
    assert [a["action"] for a in audit["items"]][:2] == ["dlq.discard", "dlq.replay"]
    code, _, err = await cli.cli("stats", token=None)
    assert code == 2
    assert "PAYPROC_ADMIN_TOKEN" in err
    code, _, err = await cli.cli("list", token="wrong")
    assert code == 1
    assert "401" in err
    assert admin_process.process.returncode is None


async def _payments_succeeded(database_url: str, payment_ids: list[str]) -> None:
    from processor.db import make_engine

    engine = make_engine(database_url)
    try:
        await record_succeeded(engine, payment_ids, merchant_id="m_cli")
    finally:
        await engine.dispose()


async def test_cli_replays_a_selection_as_a_job_lists_controls_and_follows_it(
    admin_process: AdminProcess,
    connection: AbstractRobustConnection,
    topology: Names,
    database_url: str,
) -> None:
    """`payproc dlq replay --reason ... --rate` creates a job; `jobs` lists it; `job pause`,
    `job show --follow` (exit 1 while paused), `job resume`; once the payments are final,
    `job show --follow` draws the bar to the end and exits 0."""
    cli = admin_process
    bodies = [await park(connection, topology, request_body(merchant_id="m_cli")) for _ in range(6)]
    await eventually(lambda: cli.json("stats"), lambda s: s["parked"] == 6)

    job = await cli.json("replay", "--reason", "gateway_rejected", "--rate", "2", "--canary", "2")
    assert (job["total"], job["rate"], job["canary"]["size"]) == (6, 2.0, 2)
    listed = await cli.json("jobs")
    assert [j["id"] for j in listed["items"]] == [job["id"]]
    code, out, _ = await cli.cli("jobs")
    assert code == 0
    assert job["id"] in out

    code, _, err = await cli.cli("job", "pause", job["id"], token=VIEWER_TOKEN)
    assert code == 1
    assert "403" in err
    code, out, _ = await cli.cli("job", "pause", job["id"], "--why", "lunch")
    assert code == 0
    assert "paused by alice: lunch" in out
    code, out, err = await cli.cli("job", "show", job["id"], "--follow")
    assert code == 1
    assert "paused" in err

    await cli.json("job", "resume", job["id"])
    await eventually(
        lambda: cli.json("job", "show", job["id"]), lambda j: j["published"] == 6, timeout=30
    )
    await _payments_succeeded(database_url, [b["payment_id"] for b in bodies])
    code, out, err = await cli.subprocess(
        "job", "show", job["id"], "--follow", token=OPERATOR_TOKEN
    )
    assert code == 0, err
    assert f"job {job['id']} completed: completed: 6/6 published (6 succeeded" in out
