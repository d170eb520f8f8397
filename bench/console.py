"""The operator console at scale: server time per page with 100,000 DLQ entries.

What one run does: a fresh namespace and database, ``entries`` parked entries bulk-inserted
(``bench.admin.insert_entries``: four reasons, 50 merchants, spread over days), the real
admin server started as its own process (``python -m processor admin --no-ingest``), signed
in through the console's sign-in form like a browser (its CSRF token and session cookie),
then every page fetched ``requests`` times, one request at a time, over loopback with httpx:
the overview and its refresh fragment, groups, the entries listing (first page, a filter,
pages deep in the listing by following "Older"), one entry, the audit log, a payment lookup
and the replay jobs. Each page reports p50/p95/max of the full response time (rendering
included; loopback adds well under a millisecond). The target is a p95 under 200 ms.

``run`` returns ``ConsoleResults`` (``available=False`` with the reason while the console is
missing), a type of ``bench.results`` so that the report reads it without importing this
module; ``python -m bench.run --only console`` runs it as a scenario of the benchmark, and
``python -m bench.console`` prints a table on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import re
import time

import httpx

from bench.admin import TOKEN, _percentiles, _sync_url, insert_entries
from bench.common import AMQP_URL, BenchError, Proc, connect, each_database, log, python, short_id
from bench.database import Database
from bench.results import (
    CONSOLE_TARGET_P95_MS,
    AdminFailed,
    ConsoleFigures,
    ConsoleResults,
    Latencies,
    PageTime,
)

_LISTENING = re.compile(r"admin API listening on (http://\S+)")
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_ENTRY = re.compile(r'href="/ui/entries/([0-9a-f-]{36})"')
_PAYMENT = re.compile(r'href="/ui/payments\?payment_id=([0-9a-f-]{36})"')
_OLDER = re.compile(r'href="(/ui/entries\?[^"]*cursor=[^"]+)" rel="next"')


def available() -> str | None:
    try:
        from dlq_admin.console import mount_console  # noqa: F401
    except Exception as exc:
        return f"the console is not importable ({type(exc).__name__}: {exc})"
    return None


def analyze(db: Database) -> None:
    """``ANALYZE`` the freshly bulk-loaded tables, as autovacuum would soon after: without
    statistics PostgreSQL plans ``MIN(dead_lettered_at) WHERE status = 'parked'`` as a scan
    (about 100 ms at 100,000 rows instead of about 2 ms), which no running system sees."""
    from sqlalchemy import create_engine, text

    engine = create_engine(_sync_url(db))
    try:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE dlq_entries"))
    finally:
        engine.dispose()


async def sign_in(client: httpx.AsyncClient, token: str) -> None:
    """Sign in as a browser does: the form's CSRF token and cookie, then the session."""
    form = await client.get("/ui/login")
    found = _CSRF.search(form.text)
    if form.status_code != 200 or found is None:
        raise BenchError(f"GET /ui/login answered {form.status_code}")
    answer = await client.post(
        "/ui/login", data={"token": token, "csrf": found.group(1), "next": "/ui/"}
    )
    if answer.status_code != 303 or "payproc_console" not in client.cookies:
        raise BenchError(f"console sign-in answered {answer.status_code}")


async def _timed(client: httpx.AsyncClient, path: str, requests: int) -> Latencies:
    """``requests`` GETs of one page; a payment lookup of a payment the worker never stored
    (the bench parks entries only) is a rendered 404 page, as an operator would see it."""
    samples: list[float] = []
    for _ in range(requests):
        started = time.perf_counter()
        response = await client.get(path)
        samples.append(time.perf_counter() - started)
        if response.status_code != 200 and not (
            response.status_code == 404 and path.startswith("/ui/payments")
        ):
            raise BenchError(f"GET {path} answered {response.status_code}")
    return _percentiles(samples)


async def _deep(client: httpx.AsyncClient, pages: int) -> Latencies:
    """Follow "Older" from the first entries page ``pages`` times."""
    samples: list[float] = []
    path: str | None = "/ui/entries"
    while path is not None and len(samples) < pages:
        started = time.perf_counter()
        response = await client.get(path)
        samples.append(time.perf_counter() - started)
        response.raise_for_status()
        older = _OLDER.search(response.text)
        path = html.unescape(older.group(1)) if older else None
    return _percentiles(samples)


async def measure(db_kind: str, entries: int, requests: int) -> ConsoleFigures:
    from bench.payproc_runs import migrate

    namespace = f"bench-console-{short_id()}"
    db = Database(db_kind, "console")
    server: Proc | None = None
    try:
        env = {
            "PAYPROC_AMQP_URL": AMQP_URL,
            "PAYPROC_NAMESPACE": namespace,
            "PAYPROC_DATABASE_URL": db.url,
            "PAYPROC_ADMIN_TOKEN": TOKEN,
            "PAYPROC_METRICS_BIND": "off",
            "PAYPROC_LOG_LEVEL": "WARNING",
        }
        await migrate(env)
        rate = await asyncio.to_thread(insert_entries, db, namespace, entries)
        log(f"console ({db_kind}): {entries} entries inserted at {rate:,.0f} rows/s")
        if db_kind == "postgres":
            await asyncio.to_thread(analyze, db)
        server = Proc(
            "admin",
            python("-m", "processor", "admin", "--bind", "127.0.0.1:0", "--no-ingest"),
            {**env, "PAYPROC_LOG_LEVEL": "INFO"},
        )
        url = await server.wait_for_line(_LISTENING, within=60)
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            await sign_in(client, TOKEN)
            listing = (await client.get("/ui/entries")).text
            entry = _ENTRY.search(listing)
            payment = _payment_in(listing)
            if entry is None:
                raise BenchError("the entries page lists no entry")
            paths = {
                "overview": "/ui/",
                "overview counts (refresh)": "/ui/overview.json",
                "groups": "/ui/groups",
                "entries": "/ui/entries",
                "entries, reason + merchant": "/ui/entries?reason=gateway_rejected&merchant=m_7",
                "entry": f"/ui/entries/{entry.group(1)}",
                "audit log": "/ui/audit",
                "payment lookup": f"/ui/payments?payment_id={payment}",
                "replay jobs": "/ui/jobs",
            }
            for path in paths.values():  # warm-up
                await _timed(client, path, 2)
            pages = [
                PageTime(name, path, await _timed(client, path, requests))
                for name, path in paths.items()
            ]
            pages.append(PageTime("entries, deep pages", "Older »", await _deep(client, requests)))
        return ConsoleFigures(db_kind, entries, pages)
    finally:
        if server is not None:
            server.stop()
        db.drop()
        await _delete_topology(namespace)


async def _delete_topology(namespace: str) -> None:
    """Delete what the admin declared for this namespace (its DLQ, exchanges)."""
    from bench.payproc_runs import cleanup_namespace

    connection = await connect()
    try:
        await cleanup_namespace(connection, namespace, "1")
    finally:
        await connection.close()


def _payment_in(listing: str) -> str:
    found = _PAYMENT.search(listing)
    return found.group(1) if found else "00000000-0000-0000-0000-000000000000"


async def run(
    entries: int = 100_000, requests: int = 50, dbs: tuple[str, ...] = ("postgres", "sqlite")
) -> ConsoleResults:
    """Every database in ``dbs``; ``available=False`` (and why) when there is no console."""
    why = available()
    if why is not None:
        log(f"console: not available: {why}")
        return ConsoleResults(available=False, reason=why)
    by_db = await each_database(
        "console", dbs, lambda db: measure(db, entries, requests), AdminFailed
    )
    return ConsoleResults(available=True, by_db=by_db)


def table(results: ConsoleResults) -> str:
    """The figures as a Markdown table: one row per page and database."""
    if not results.available:
        return f"console: not available ({results.reason})"
    lines = [
        f"Console server time per page (target: p95 under {CONSOLE_TARGET_P95_MS:.0f} ms)",
        "",
        "| database | entries | page | p50 ms | p95 ms | max ms | n |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for db_kind, figures in results.by_db.items():
        if isinstance(figures, AdminFailed):
            lines.append(f"| {db_kind} | | failed: {figures.error} | | | | |")
            continue
        for p in figures.pages:
            t = p.latencies
            lines.append(
                f"| {db_kind} | {figures.entries:,} | {p.page} | {t.p50_ms:.1f} | "
                f"{t.p95_ms:.1f} | {t.max_ms:.1f} | {t.n} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--db", action="append", choices=("postgres", "sqlite"))
    args = parser.parse_args()
    dbs = tuple(args.db or ("postgres", "sqlite"))
    print(table(asyncio.run(run(args.entries, args.requests, dbs))))


if __name__ == "__main__":
    main()
