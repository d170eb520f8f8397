"""What the use case did with one message, as typed data: an ``Outcome`` plus the facts that
go with it (the retry delay, the park reason). The consumer counts it and acks after it,
metrics label by it, the worker's log line carries it; nobody parses a string back apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from schemas.outcome import ParkReason


class Outcome(StrEnum):
    """How the handling of one message ended (the message is acked after each of these)."""

    SUCCEEDED = "succeeded"
    """The gateway charged; stored, announced and replied."""
    DECLINED = "declined"
    """The gateway declined (402), a final business answer."""
    RETRY = "retry"
    """A copy waits in the retry queue of ``Handled.delay``."""
    PARKED = "parked"
    """A copy went to the DLQ for ``Handled.park_reason``."""
    DUPLICATE = "duplicate"
    """Another delivery of the same payment had already settled it; its answer was repeated."""
    DEFERRED = "deferred"
    """Another delivery holds the payment right now; a copy waits ``Handled.delay``."""


@dataclass(frozen=True, slots=True)
class Handled:
    """What the use case did; the consumer acks after it returns.

    ``delay`` is set for ``RETRY`` and ``DEFERRED`` (seconds, one of the policy's delays),
    ``park_reason`` for ``PARKED``. ``transient`` says whether the gateway's answer was a
    transient failure (``None`` when the gateway was not called)."""

    outcome: Outcome
    delay: float | None = None
    park_reason: ParkReason | None = None
    gateway_called: bool = False
    transient: bool | None = None

    def __post_init__(self) -> None:
        if (self.outcome is Outcome.PARKED) != (self.park_reason is not None):
            raise ValueError("a park reason goes with PARKED and only with it")
        if (self.outcome in _DELAYED) != (self.delay is not None):
            raise ValueError("a delay goes with RETRY and DEFERRED and only with them")

    @property
    def label(self) -> str:
        """One flat name per outcome: ``succeeded``, ``retry``, ``parked_poison``, ... (the
        ``outcome`` label of ``payproc_payments_total``)."""
        if self.park_reason is not None:
            return f"{self.outcome.value}_{self.park_reason.value}"
        return self.outcome.value


_DELAYED = frozenset({Outcome.RETRY, Outcome.DEFERRED})


__all__ = ["Handled", "Outcome"]
