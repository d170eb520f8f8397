"""The real clock (use cases take a ``Clock`` port so tests can pin time)."""

from __future__ import annotations

import time
from datetime import datetime

from schemas.tables import utcnow


class SystemClock:
    def now(self) -> datetime:
        return utcnow()

    def monotonic(self) -> float:
        return time.monotonic()
