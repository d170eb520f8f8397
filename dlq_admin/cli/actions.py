"""``payproc dlq replay``, ``discard`` and ``audit``: one entry by id, or a bulk selection
(ids, ``--reason`` or ``--group``, with ``--limit`` and ``--dry-run``; a replay also by
``--merchant-id``, ``--status``, ``--since`` and ``--until``). A bulk replay creates
a replay job (``dlq_admin.cli.jobs``; ``--rate``, ``--ramp``, ``--canary``, ``--follow``)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from dlq_admin.cli.http import call, emit, err_console, out_console, short_time
from dlq_admin.cli.jobs import replay_job
from dlq_admin.errors import CliError


def _selection(ns: argparse.Namespace) -> dict[str, Any] | None:
    """The bulk selection of replay/discard, or None for a single-id call. A replay also
    takes ``--merchant-id``, ``--status``, ``--since`` and ``--until``, alone or combined."""
    filters = {
        name: getattr(ns, name, None) for name in ("merchant_id", "status", "since", "until")
    }
    filters = {name: value for name, value in filters.items() if value is not None}
    chosen = [bool(ns.ids), ns.reason is not None, ns.group is not None]
    if filters:
        if not any(chosen) and set(filters) == {"status"}:
            raise CliError("--status narrows a selection: add ids, --reason, --group, ...", 2)
    elif sum(chosen) != 1:
        raise CliError("give entry ids, or --reason, or --group (exactly one of them)", 2)
    if len(ns.ids) == 1 and not filters and not ns.dry_run and ns.limit is None:
        return None
    selection: dict[str, Any] = {"dry_run": ns.dry_run, **filters}
    if ns.ids:
        selection["ids"] = ns.ids
    if ns.reason is not None:
        selection["reason"] = ns.reason
    if ns.group is not None:
        selection["group"] = ns.group
    selection["limit"] = ns.limit if ns.limit is not None else 100
    return selection


def _render_bulk(verb: str) -> Callable[[dict[str, Any]], None]:
    def render(result: dict[str, Any]) -> None:
        from rich.table import Table

        console = out_console()
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
            err_console().print(f"failed {failure['id']}: {failure['error']}")

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
        data = call(ns, "POST", f"/dlq/messages/{ns.ids[0]}/replay", body=body)

        def render(result: dict[str, Any]) -> None:
            edited = " with the edited body" if result["edited"] else ""
            out_console().print(
                f"replayed {result['id']} (payment {result['payment_id']}){edited}; "
                "follow it with: payproc dlq show " + result["id"]
            )

        emit(ns, data, render)
        return 0
    if payload is not None:
        raise CliError("--payload edits one entry: give exactly one id", 2)
    if not selection["dry_run"]:
        return replay_job(ns, selection)
    data = call(ns, "POST", "/dlq/replay", body=selection, timeout=600)
    emit(ns, data, _render_bulk("replay"))
    return 0


def cmd_discard(ns: argparse.Namespace) -> int:
    selection = _selection(ns)
    if selection is None:
        data = call(ns, "DELETE", f"/dlq/messages/{ns.ids[0]}", params={"note": ns.note})

        def render(entry: dict[str, Any]) -> None:
            out_console().print(f"{entry['id']} is {entry['status']} (kept, not deleted)")

        emit(ns, data, render)
        return 0
    data = call(ns, "POST", "/dlq/discard", body=selection, timeout=600)
    emit(ns, data, _render_bulk("discard"))
    return 0


def cmd_audit(ns: argparse.Namespace) -> int:
    from rich.table import Table

    params = {"actor": ns.actor, "action": ns.action, "limit": ns.limit}
    data = call(ns, "GET", "/audit", params=params)

    def render(page: dict[str, Any]) -> None:
        table = Table(title="audit log (newest first)")
        for column in ("at (UTC)", "actor", "action", "target", "outcome", "status"):
            table.add_column(column, overflow="fold")
        for a in page["items"]:
            table.add_row(
                short_time(a["at"]),
                a["actor"] or "-",
                a["action"],
                (a["target"] or "-")[:60],
                a["outcome"],
                str(a["status_code"]),
            )
        out_console().print(table)

    emit(ns, data, render)
    return 0
