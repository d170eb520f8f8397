"""Rendering pages: the Jinja2 environment (autoescape always on), the filters the templates
use, and the headers every console response carries.

Everything a parked message carries is untrusted text; the templates never mark data
``|safe``, so a ``<script>`` in a body or header is shown as text. The Content-Security-Policy
allows scripts and styles from ``/ui/static`` only (no inline script, no inline style, no
framing), so even markup that slipped through could not run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse

from dlq_admin.console.sessions import Session
from schemas.cards import redact_card_numbers

HERE = Path(__file__).parent
STATIC = HERE / "static"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def ago(value: datetime | float | None, now: datetime | None = None) -> str:
    """A short age: ``42s``, ``7m``, ``3h 5m``, ``2d 4h``."""
    if value is None:
        return "-"
    if isinstance(value, datetime):
        at = value if value.tzinfo else value.replace(tzinfo=UTC)
        seconds = ((now or datetime.now(UTC)) - at).total_seconds()
    else:
        seconds = float(value)
    seconds = max(int(seconds), 0)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600}h"


def when(value: datetime | None) -> str:
    """A UTC timestamp to the second."""
    if value is None:
        return "-"
    at = value if value.tzinfo else value.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def masked_json(value: Any) -> str:
    """Pretty JSON (or the text itself) with anything that looks like a card number masked."""
    if isinstance(value, str):
        return redact_card_numbers(value)
    text = orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS, default=str)
    return redact_card_numbers(text.decode())


def short(value: str | None, size: int = 12) -> str:
    if not value:
        return "-"
    return value if len(value) <= size else value[:size] + "…"


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters.update(ago=ago, when=when, masked_json=masked_json, short=short)
    return env


ENV = _environment()


def page(
    template: str,
    session: Session | None,
    http_status: int = 200,
    *,
    refresh_ms: int = 5000,
    **context: Any,
) -> HTMLResponse:
    """Render ``template`` with the signed-in session (or none) as ``me``."""
    html = ENV.get_template(template).render(me=session, refresh_ms=refresh_ms, **context)
    return HTMLResponse(html, status_code=http_status)
