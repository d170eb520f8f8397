"""W3C trace context (``traceparent``) without a tracing SDK.

A payment keeps one trace id from the request message through every gateway call, retry
copy, DLQ entry, replay, event and reply. A message that arrives without a ``traceparent``
gets a new trace at the worker; each gateway call is a child span. Exporting spans (e.g. with
OpenTelemetry) is left to the deployment; the ids in headers and logs already join the hops.
"""

from __future__ import annotations

import re
import secrets

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def is_valid(value: object) -> bool:
    if not isinstance(value, str):
        return False
    match = _TRACEPARENT.match(value)
    if match is None:
        return False
    return match.group(1) != "0" * 32 and match.group(2) != "0" * 16


def new_traceparent() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def child_of(traceparent: str) -> str:
    """Same trace, new span id (the span of one hop, e.g. a gateway call)."""
    match = _TRACEPARENT.match(traceparent)
    if match is None:
        return new_traceparent()
    return f"00-{match.group(1)}-{secrets.token_hex(8)}-{match.group(3)}"


def trace_id(traceparent: str | None) -> str | None:
    match = _TRACEPARENT.match(traceparent or "")
    return match.group(1) if match else None
