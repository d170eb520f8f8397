"""A transport-neutral view of one delivered message.

The consumer builds an ``Envelope`` from an AMQP delivery; use cases and the publisher port
only ever see this, so they can be unit-tested without a broker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from processor.tracing import is_valid
from schemas import headers as h


@dataclass(frozen=True, slots=True)
class Envelope:
    body: bytes
    headers: Mapping[str, Any] = field(default_factory=dict)
    content_type: str | None = None
    reply_to: str | None = None
    correlation_id: str | None = None
    message_id: str | None = None

    @property
    def attempt(self) -> int:
        """Gateway attempts already made in this round (our header, never ``redelivered``)."""
        return _int_header(self.headers.get(h.ATTEMPT))

    @property
    def in_doubt(self) -> bool:
        """An earlier attempt of this payment ended in doubt (``x-payproc-in-doubt``)."""
        return _int_header(self.headers.get(h.IN_DOUBT)) > 0

    @property
    def deferrals(self) -> int:
        return _int_header(self.headers.get(h.DEFERRED))

    @property
    def delivery_count(self) -> int:
        """How often the broker already delivered this message (quorum queues count returns)."""
        return _int_header(self.headers.get(h.BROKER_DELIVERY_COUNT))

    @property
    def traceparent(self) -> str | None:
        value = self.headers.get(h.TRACEPARENT)
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        return value if is_valid(value) else None

    @property
    def replay_of(self) -> str | None:
        value = self.headers.get(h.REPLAY_OF)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        return str(value) if value else None


def _int_header(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, (bytes, str)):
        try:
            return max(int(value), 0)
        except ValueError:
            return 0
    return 0
