"""Ingest: index one parked message from ``N.dlq`` as a DLQ entry, once.

The message is parsed (``dlq_admin.parse``: redacted, size-limited, fingerprinted) and
inserted unless an entry with its ``dedup_key`` exists, so a redelivery stores nothing.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime

from dlq_admin.parse import parse_parked
from dlq_admin.ports import EntryWriter, Observe, RawMessage

log = logging.getLogger("payproc.admin")


class Ingest:
    def __init__(self, store: EntryWriter, clock: Callable[[], datetime], observe: Observe) -> None:
        self.store = store
        self._clock = clock
        self._observe = observe

    async def ingest(self, raw: RawMessage) -> bool:
        """Store one parked message unless it was stored before; True if it is new."""
        entry = parse_parked(raw, str(uuid.uuid4()), self._clock())
        inserted = await self.store.insert_entry(entry)
        if inserted:
            lag = (self._clock() - entry.dead_lettered_at).total_seconds()
            self._observe("ingested", entry.reason.value, max(lag, 0.0))
            log.debug(
                "dlq entry indexed",
                extra={"entry_id": entry.id, "reason": entry.reason.value},
            )
        return inserted
