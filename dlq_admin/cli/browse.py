"""``payproc dlq list``, ``show``, ``stats`` and ``groups``: read-only views of the DLQ."""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from dlq_admin.cli.http import call, emit, error_text, human_age, out_console, short_time


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
    data = call(ns, "GET", "/dlq/messages", params=params)

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
                short_time(item["dead_lettered_at"]),
                item["reason"],
                item["status"],
                item["payment_id"] or "-",
                error_text(item["error"]),
                str(item["attempts"]),
            )
        console = out_console()
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

    emit(ns, data, render)
    return 0


def cmd_show(ns: argparse.Namespace) -> int:
    from rich.json import JSON
    from rich.table import Table

    data = call(ns, "GET", f"/dlq/messages/{ns.id}")

    def render(entry: dict[str, Any]) -> None:
        console = out_console()
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
                    short_time(r["dead_lettered_at"]),
                    r["reason"],
                    error_text(r["error"]),
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
                    short_time(a["started_at"]),
                    a["outcome"],
                    str(a["http_status"] or "-"),
                    f"{a['error_code'] or ''} {a['error_message'] or ''}".strip()[:80] or "-",
                    a["replay_of"] or "-",
                )
            console.print(history)

    emit(ns, data, render)
    return 0


def cmd_stats(ns: argparse.Namespace) -> int:
    from rich.table import Table

    data = call(ns, "GET", "/dlq/stats")

    def render(stats: dict[str, Any]) -> None:
        console = out_console()
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
                f"oldest parked: {short_time(stats['oldest_parked_at'])} UTC ({human_age(age)} ago)"
            )
        retention = stats.get("retention")
        if retention:
            console.print(
                f"{retention['purge_next_24h']} entries will be purged in the next 24 h "
                f"(discarded and replayed entries are kept {retention['days']:g} days)"
            )

    emit(ns, data, render)
    return 0


def cmd_groups(ns: argparse.Namespace) -> int:
    from rich.table import Table

    data = call(
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
                short_time(g["first_seen"]),
                short_time(g["last_seen"]),
                (g["sample_error"] or "-")[:80],
            )
        console = out_console()
        console.print(table)
        if groups["items"]:
            console.print('replay a group: payproc dlq replay --group "<fingerprint>" --dry-run')

    emit(ns, data, render)
    return 0
