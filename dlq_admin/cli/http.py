"""The HTTP side of ``payproc dlq``: the admin API client, error mapping and console output.

The URL comes from ``--url`` / ``$PAYPROC_ADMIN_URL`` (default ``http://127.0.0.1:8080``), the
token from ``--token`` / ``$PAYPROC_ADMIN_TOKEN``; ``--json`` prints the API's JSON unchanged.
httpx and rich are imported by the function that needs them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dlq_admin.errors import CliError

if TYPE_CHECKING:
    import httpx
    from rich.console import Console

DEFAULT_URL = "http://127.0.0.1:8080"


def api_client(ns: argparse.Namespace, timeout: float = 30.0) -> httpx.Client:
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


def call(
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
    with api_client(ns, timeout) as client:
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


def out_console() -> Console:
    from rich.console import Console

    return Console(soft_wrap=False)


def err_console() -> Console:
    from rich.console import Console

    return Console(stderr=True)


def emit(ns: argparse.Namespace, data: Any, render: Callable[[Any], None]) -> None:
    if ns.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        render(data)


def short_time(value: str | None) -> str:
    if not value:
        return "-"
    return value.replace("T", " ")[:19]


def error_text(error: dict[str, Any] | None) -> str:
    if not error:
        return "-"
    code = error.get("code") or "-"
    status = error.get("http_status")
    message = error.get("message") or ""
    prefix = f"{code} ({status})" if status else code
    return f"{prefix}: {message}"[:90] if message else prefix


def human_age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def run_dlq(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(ns: argparse.Namespace) -> int:
        try:
            return func(ns)
        except CliError as exc:
            print(f"payproc dlq: {exc}", file=sys.stderr)
            return exc.code

    return run
