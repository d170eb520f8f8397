"""``payproc admin`` (serve the admin API + DLQ ingest) and ``payproc dlq ...`` (talk to it).

``processor.cli`` calls ``register(subparsers)`` for every ``payproc`` command line, so this
module imports only the standard library at the top; httpx, rich and the service are imported
by the command that needs them, where an ``ImportError`` surfaces loudly.

``payproc dlq`` reads the URL from ``--url`` / ``$PAYPROC_ADMIN_URL`` (default
``http://127.0.0.1:8080``) and the token from ``--token`` / ``$PAYPROC_ADMIN_TOKEN``; ``--json``
prints the API's JSON unchanged for scripts. Exit status: 0 ok, 1 the API refused or failed,
2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx
    from rich.console import Console

DEFAULT_URL = "http://127.0.0.1:8080"
REASONS = ("retries_exhausted", "gateway_rejected", "invalid_message", "poison", "outcome_unknown")
STATUSES = ("parked", "replaying", "replayed", "discarded", "resolved")


class CliError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# ---- payproc admin ------------------------------------------------------------------------


def cmd_admin(ns: argparse.Namespace) -> int:
    from dlq_admin.runtime import admin_tokens, parse_bind, serve
    from processor.config import load_settings
    from processor.logs import register_secret, setup_logging

    overrides: dict[str, object] = {}
    for name in ("amqp_url", "database_url", "namespace"):
        value = getattr(ns, name, None)
        if value is not None:
            overrides[name] = value
    settings = load_settings(**overrides)
    register_secret(settings.admin_token)
    register_secret(settings.admin_tokens)
    setup_logging(settings.log_format, settings.log_level)
    admin_tokens(settings)  # refuse to start without a token, before anything else
    parse_bind(ns.bind or settings.admin_bind)

    coro = serve(settings, bind=ns.bind, ingest=not ns.no_ingest)
    try:
        import uvloop

        return int(uvloop.run(coro))
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        import asyncio

        return asyncio.run(coro)


# ---- payproc dlq: HTTP --------------------------------------------------------------------


def _client(ns: argparse.Namespace, timeout: float = 30.0) -> httpx.Client:
    import httpx

    token = ns.token or os.environ.get("PAYPROC_ADMIN_TOKEN")
    if not token:
        raise CliError("no admin token: pass --token or set PAYPROC_ADMIN_TOKEN", 2)
    url = (ns.url or os.environ.get("PAYPROC_ADMIN_URL") or DEFAULT_URL).rstrip("/")
    return httpx.Client(
        base_url=url,
        headers={"Authorization": f"Bearer {token}", "User-Agent": "payproc-cli"},
        timeout=timeout,
    )


def _call(
    ns: argparse.Namespace,
    method: str,
    path: str,
    *,
    params: dict[str, Any] | None = None,
    body: Any = None,
    timeout: float = 30.0,
) -> Any:
    import httpx

    clean_params = {k: v for k, v in (params or {}).items() if v is not None}
    with _client(ns, timeout) as client:
        try:
            response = client.request(method, path, params=clean_params, json=body)
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach the admin API at {client.base_url}: {exc}") from exc
    try:
        data = response.json()
    except ValueError:
        data = {"detail": response.text[:300], "code": "not_json"}
    if response.status_code >= 400:
        if ns.json:
            print(json.dumps(data, indent=2))
        detail = data.get("detail") if isinstance(data, dict) else data
        code = data.get("code") if isinstance(data, dict) else ""
        hint = ""
        if response.status_code == 401:
            hint = " (check --token / PAYPROC_ADMIN_TOKEN)"
        elif response.status_code == 403:
            hint = " (this token is a viewer; replay and discard need an operator token)"
        raise CliError(f"{response.status_code} {code}: {detail}{hint}")
    return data


def _console() -> Console:
    from rich.console import Console

    return Console(soft_wrap=False)


def _err_console() -> Console:
    from rich.console import Console

    return Console(stderr=True)


def _emit(ns: argparse.Namespace, data: Any, render: Callable[[Any], None]) -> None:
    if ns.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        render(data)


def _short_time(value: str | None) -> str:
    if not value:
        return "-"
    return value.replace("T", " ")[:19]


def _error_text(error: dict[str, Any] | None) -> str:
    if not error:
        return "-"
    code = error.get("code") or "-"
    status = error.get("http_status")
    message = error.get("message") or ""
    prefix = f"{code} ({status})" if status else code
    return f"{prefix}: {message}"[:90] if message else prefix


# ---- payproc dlq: commands ----------------------------------------------------------------


def cmd_list(ns: argparse.Namespace) -> int:
    from rich.table import Table

    params = {
        "reason": ns.reason,
        "status": ns.status,
        "payment_id": ns.payment_id,
        "merchant_id": ns.merchant_id,
        "since": ns.since,
        "until": ns.until,
        "group": ns.group,
        "limit": ns.limit,
        "cursor": ns.cursor,
    }
    data = _call(ns, "GET", "/dlq/messages", params=params)

    def render(page: dict[str, Any]) -> None:
        table = Table(title=f"DLQ entries ({len(page['items'])}, newest first)")
        table.add_column("id", no_wrap=True)
        table.add_column("dead-lettered (UTC)")
        table.add_column("reason")
        table.add_column("status")
        table.add_column("payment", no_wrap=True)
        table.add_column("error", overflow="fold")
        table.add_column("att", justify="right")
        for item in page["items"]:
            table.add_row(
                item["id"],
                _short_time(item["dead_lettered_at"]),
                item["reason"],
                item["status"],
                item["payment_id"] or "-",
                _error_text(item["error"]),
                str(item["attempts"]),
            )
        console = _console()
        console.print(table)
        if page.get("next_cursor"):
            again = " ".join(
                f"--{name.replace('_', '-')} {shlex.quote(str(value))}"
                for name, value in params.items()
                if value is not None and name not in ("cursor", "limit")
            )
            console.print(
                f"more: payproc dlq list {again + ' ' if again else ''}"
                f"--cursor {page['next_cursor']}"
            )

    _emit(ns, data, render)
    return 0


def cmd_show(ns: argparse.Namespace) -> int:
    from rich.json import JSON
    from rich.table import Table

    data = _call(ns, "GET", f"/dlq/messages/{ns.id}")

    def render(entry: dict[str, Any]) -> None:
        console = _console()
        facts = Table(show_header=False, title=f"DLQ entry {entry['id']}")
        facts.add_column("field", style="bold")
        facts.add_column("value", overflow="fold")
        error = entry["error"]
        for label, value in (
            ("status", entry["status"]),
            ("reason", entry["reason"]),
            ("error code", error.get("code")),
            ("error", error.get("message")),
            ("http status", error.get("http_status")),
            ("exception", error.get("exception_type")),
            ("fingerprint", entry["fingerprint"]),
            ("payment", entry["payment_id"]),
            ("merchant", entry["merchant_id"]),
            ("attempts", entry["attempts"]),
            ("dead-lettered", entry["dead_lettered_at"]),
            ("replay of", entry["replay_of"]),
            (
                "replayed",
                f"{entry['replayed_at']} by {entry['replayed_by']}"
                if entry["replayed_at"]
                else None,
            ),
            ("replayed as", ", ".join(entry["replayed_as"]) or None),
            (
                "discarded",
                f"{entry['discarded_at']} by {entry['discarded_by']}"
                if entry["discarded_at"]
                else None,
            ),
            ("payment now", entry["payment"]["status"] if entry.get("payment") else None),
        ):
            if value is not None:
                facts.add_row(label, str(value))
        console.print(facts)
        console.print("[bold]body[/bold]" + ("" if entry["body_is_json"] else " (not JSON)"))
        if entry["body_is_json"]:
            console.print(JSON.from_data(entry["body"]))
        else:
            console.print(repr(entry["body"])[:2000])
        if entry.get("replayed_body") is not None:
            console.print("[bold]edited body published by the replay[/bold]")
            console.print(JSON.from_data(entry["replayed_body"]))
        console.print("[bold]headers[/bold]")
        console.print(JSON.from_data(entry["headers"]))
        if len(entry["rounds"]) > 1:
            rounds = Table(title="rounds (each parking of this message)")
            for column in ("entry", "dead-lettered", "reason", "error", "status"):
                rounds.add_column(column, overflow="fold")
            for r in entry["rounds"]:
                marker = " (this)" if r["id"] == entry["id"] else ""
                rounds.add_row(
                    r["id"] + marker,
                    _short_time(r["dead_lettered_at"]),
                    r["reason"],
                    _error_text(r["error"]),
                    r["status"],
                )
            console.print(rounds)
        if entry["history"]:
            history = Table(title="gateway attempts")
            for column in ("#", "started (UTC)", "outcome", "http", "error", "replay of"):
                history.add_column(column, overflow="fold")
            for a in entry["history"]:
                history.add_row(
                    str(a["attempt"]),
                    _short_time(a["started_at"]),
                    a["outcome"],
                    str(a["http_status"] or "-"),
                    f"{a['error_code'] or ''} {a['error_message'] or ''}".strip()[:80] or "-",
                    a["replay_of"] or "-",
                )
            console.print(history)

    _emit(ns, data, render)
    return 0


def cmd_stats(ns: argparse.Namespace) -> int:
    from rich.table import Table

    data = _call(ns, "GET", "/dlq/stats")

    def render(stats: dict[str, Any]) -> None:
        console = _console()
        table = Table(title="DLQ by reason")
        table.add_column("reason")
        table.add_column("parked", justify="right")
        table.add_column("all", justify="right")
        for reason, count in sorted(stats["by_reason"].items()):
            table.add_row(reason, str(stats["parked_by_reason"].get(reason, 0)), str(count))
        console.print(table)
        statuses = ", ".join(f"{k}={v}" for k, v in stats["by_status"].items())
        console.print(f"entries: {stats['total']} ({statuses})")
        waiting = stats["queue"]["waiting"]
        console.print(
            f"waiting in {stats['queue']['name']} (not yet indexed): "
            f"{'unknown (broker unreachable)' if waiting is None else waiting}"
        )
        age = stats["oldest_parked_age_seconds"]
        if age is not None:
            console.print(
                f"oldest parked: {_short_time(stats['oldest_parked_at'])} UTC ({_age(age)} ago)"
            )

    _emit(ns, data, render)
    return 0


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def cmd_groups(ns: argparse.Namespace) -> int:
    from rich.table import Table

    data = _call(
        ns,
        "GET",
        "/dlq/groups",
        params={"status": ns.status, "reason": ns.reason, "limit": ns.limit},
    )

    def render(groups: dict[str, Any]) -> None:
        table = Table(title=f"{groups['status']} entries by failure fingerprint")
        for column in ("fingerprint", "count", "first seen", "last seen", "sample error"):
            table.add_column(column, overflow="fold")
        for g in groups["items"]:
            table.add_row(
                g["fingerprint"],
                str(g["count"]),
                _short_time(g["first_seen"]),
                _short_time(g["last_seen"]),
                (g["sample_error"] or "-")[:80],
            )
        console = _console()
        console.print(table)
        if groups["items"]:
            console.print('replay a group: payproc dlq replay --group "<fingerprint>" --dry-run')

    _emit(ns, data, render)
    return 0


def _selection(ns: argparse.Namespace) -> dict[str, Any] | None:
    """The bulk selection of replay/discard, or None for a single-id call."""
    chosen = [bool(ns.ids), ns.reason is not None, ns.group is not None]
    if sum(chosen) != 1:
        raise CliError("give entry ids, or --reason, or --group (exactly one of them)", 2)
    if len(ns.ids) == 1 and not ns.dry_run and ns.limit is None:
        return None
    selection: dict[str, Any] = {"dry_run": ns.dry_run}
    if ns.ids:
        selection["ids"] = ns.ids
    elif ns.reason is not None:
        selection["reason"] = ns.reason
    else:
        selection["group"] = ns.group
    if ns.limit is not None:
        selection["limit"] = ns.limit
    return selection


def _render_bulk(verb: str) -> Callable[[dict[str, Any]], None]:
    def render(result: dict[str, Any]) -> None:
        from rich.table import Table

        console = _console()
        count = result.get("would_replay") if verb == "replay" else len(result["ids"])
        if result["dry_run"]:
            console.print(f"dry run: would {verb} {count} entries")
            for entry_id in result["ids"][:50]:
                console.print(f"  {entry_id}")
        else:
            done = result["replayed"] if verb == "replay" else result["discarded"]
            console.print(f"{verb}ed {done} entries")
        if result["skipped"]:
            table = Table(title=f"skipped ({len(result['skipped'])})")
            table.add_column("id")
            table.add_column("why")
            for s in result["skipped"][:100]:
                table.add_row(s["id"], s["why"])
            console.print(table)
        for failure in result.get("failed", []):
            _err_console().print(f"failed {failure['id']}: {failure['error']}")

    return render


def _payload(ns: argparse.Namespace) -> dict[str, Any] | None:
    text = None
    if ns.payload_file:
        with open(ns.payload_file, encoding="utf-8") as handle:
            text = handle.read()
    elif ns.payload:
        text = ns.payload
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"--payload is not JSON: {exc}", 2) from exc
    if not isinstance(value, dict):
        raise CliError("--payload must be a JSON object (the whole edited payment request)", 2)
    return value


def cmd_replay(ns: argparse.Namespace) -> int:
    payload = _payload(ns)
    selection = _selection(ns)
    if selection is None:
        body = {"payload": payload} if payload is not None else None
        data = _call(ns, "POST", f"/dlq/messages/{ns.ids[0]}/replay", body=body)

        def render(result: dict[str, Any]) -> None:
            edited = " with the edited body" if result["edited"] else ""
            _console().print(
                f"replayed {result['id']} (payment {result['payment_id']}){edited}; "
                "follow it with: payproc dlq show " + result["id"]
            )

        _emit(ns, data, render)
        return 0
    if payload is not None:
        raise CliError("--payload edits one entry: give exactly one id", 2)
    data = _call(ns, "POST", "/dlq/replay", body=selection, timeout=3600)
    _emit(ns, data, _render_bulk("replay"))
    return 1 if data.get("failed") else 0


def cmd_discard(ns: argparse.Namespace) -> int:
    selection = _selection(ns)
    if selection is None:
        data = _call(ns, "DELETE", f"/dlq/messages/{ns.ids[0]}", params={"note": ns.note})

        def render(entry: dict[str, Any]) -> None:
            _console().print(f"{entry['id']} is {entry['status']} (kept, not deleted)")

        _emit(ns, data, render)
        return 0
    data = _call(ns, "POST", "/dlq/discard", body=selection, timeout=600)
    _emit(ns, data, _render_bulk("discard"))
    return 0


def cmd_audit(ns: argparse.Namespace) -> int:
    from rich.table import Table

    params = {"actor": ns.actor, "action": ns.action, "limit": ns.limit}
    data = _call(ns, "GET", "/audit", params=params)

    def render(page: dict[str, Any]) -> None:
        table = Table(title="audit log (newest first)")
        for column in ("at (UTC)", "actor", "action", "target", "outcome", "status"):
            table.add_column(column, overflow="fold")
        for a in page["items"]:
            table.add_row(
                _short_time(a["at"]),
                a["actor"] or "-",
                a["action"],
                (a["target"] or "-")[:60],
                a["outcome"],
                str(a["status_code"]),
            )
        _console().print(table)

    _emit(ns, data, render)
    return 0


def _run_dlq(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(ns: argparse.Namespace) -> int:
        try:
            return func(ns)
        except CliError as exc:
            print(f"payproc dlq: {exc}", file=sys.stderr)
            return exc.code

    return run


# ---- registration -------------------------------------------------------------------------


def register(subparsers: Any) -> None:
    """Add ``admin`` and ``dlq`` to the ``payproc`` command line."""
    admin = subparsers.add_parser(
        "admin", help="serve the admin API and index the DLQ (needs PAYPROC_ADMIN_TOKEN)"
    )
    admin.add_argument("--amqp-url", dest="amqp_url", help="default: $PAYPROC_AMQP_URL")
    admin.add_argument("--namespace", help="default: $PAYPROC_NAMESPACE or 'payments'")
    admin.add_argument("--database-url", dest="database_url")
    admin.add_argument(
        "--bind", help="host:port (default $PAYPROC_ADMIN_BIND or 127.0.0.1:8080; port 0 = any)"
    )
    admin.add_argument(
        "--no-ingest",
        action="store_true",
        help="serve the API only; parked messages keep waiting in N.dlq",
    )
    admin.set_defaults(func=cmd_admin)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url", help=f"admin API base URL (default $PAYPROC_ADMIN_URL or {DEFAULT_URL})"
    )
    common.add_argument("--token", help="bearer token (default $PAYPROC_ADMIN_TOKEN)")
    common.add_argument("--json", action="store_true", help="print the API's JSON (for scripts)")

    dlq = subparsers.add_parser("dlq", help="browse, replay and discard parked payments")
    sub = dlq.add_subparsers(dest="dlq_command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", parents=[common], help="list entries, newest first")
    p.add_argument("--reason", choices=REASONS)
    p.add_argument("--status", choices=STATUSES)
    p.add_argument("--payment-id", dest="payment_id")
    p.add_argument("--merchant-id", dest="merchant_id")
    p.add_argument("--since", help="ISO time: dead-lettered at or after")
    p.add_argument("--until", help="ISO time: dead-lettered before")
    p.add_argument("--group", help="a fingerprint from 'payproc dlq groups'")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--cursor", help="next_cursor of the previous page")
    p.set_defaults(func=_run_dlq(cmd_list))

    p = sub.add_parser("show", parents=[common], help="one entry whole, with history")
    p.add_argument("id")
    p.set_defaults(func=_run_dlq(cmd_show))

    p = sub.add_parser("stats", parents=[common], help="counts, oldest age, queue backlog")
    p.set_defaults(func=_run_dlq(cmd_stats))

    p = sub.add_parser("groups", parents=[common], help="entries grouped by failure")
    p.add_argument("--status", choices=STATUSES, default="parked")
    p.add_argument("--reason", choices=REASONS)
    p.add_argument("--limit", type=int, default=100)
    p.set_defaults(func=_run_dlq(cmd_groups))

    for name, helptext in (
        ("replay", "republish entries with a fresh attempt budget"),
        ("discard", "mark entries discarded (kept, never deleted)"),
    ):
        p = sub.add_parser(name, parents=[common], help=helptext)
        p.add_argument("ids", nargs="*", metavar="ID", help="entry ids")
        p.add_argument("--reason", choices=REASONS, help="every parked entry with this reason")
        p.add_argument("--group", help="every parked entry with this fingerprint")
        p.add_argument("--limit", type=int, help="at most this many entries (bulk; default 100)")
        p.add_argument("--dry-run", action="store_true", help="only show what would happen")
        if name == "replay":
            p.add_argument("--payload", help="edited request body (JSON object) for one entry")
            p.add_argument("--payload-file", dest="payload_file", help="...read from a file")
            p.set_defaults(func=_run_dlq(cmd_replay))
        else:
            p.add_argument("--note", help="why (kept in the audit log)")
            p.set_defaults(func=_run_dlq(cmd_discard))

    p = sub.add_parser("audit", parents=[common], help="the audit log, newest first")
    p.add_argument("--actor")
    p.add_argument("--action")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=_run_dlq(cmd_audit))
