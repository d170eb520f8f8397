"""Exchange and queue names of one deployment, all derived from the namespace, so two
deployments (or two test runs) on one broker never share a queue."""

from __future__ import annotations

from dataclasses import dataclass

REQUEST_ROUTING_KEY = "payment.request"
DEAD_ROUTING_KEY = "payment.dead"


def format_delay(seconds: float) -> str:
    """``1.0 -> "1s"``, ``0.25 -> "0.25s"``: the suffix of a retry queue's name."""
    return f"{seconds:g}s"


@dataclass(frozen=True, slots=True)
class Names:
    namespace: str

    @property
    def exchange(self) -> str:
        return self.namespace

    @property
    def requests(self) -> str:
        return f"{self.namespace}.requests"

    @property
    def dlx(self) -> str:
        return f"{self.namespace}.dlx"

    @property
    def dlq(self) -> str:
        return f"{self.namespace}.dlq"

    @property
    def events(self) -> str:
        return f"{self.namespace}.events"

    def retry_queue(self, delay: float) -> str:
        return f"{self.namespace}.retry.{format_delay(delay)}"
