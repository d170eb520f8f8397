"""The fake gateway's ledger and idempotency store (``GatewayState``), kept on the app."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from aiohttp import web

from processor.fake_gateway import faults
from processor.fake_gateway.config import FakeGatewayConfig
from processor.fake_server import FakeRuntime, apply_knobs, counts_by_status

__all__ = ["STATE_KEY", "GatewayState", "StoredAnswer"]


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """A final answer kept for an idempotency key, replayed byte for byte."""

    status: int
    body: bytes


@dataclass(slots=True)
class GatewayState(FakeRuntime):
    """The in-memory ledger and idempotency store; in-process tests read it directly."""

    config: FakeGatewayConfig
    requests: int = 0
    charges: int = 0
    charges_by_key: dict[str, int] = field(default_factory=dict)
    charge_ids: dict[str, list[str]] = field(default_factory=dict)
    answers: Counter[int] = field(default_factory=Counter)
    stored: dict[str, StoredAnswer] = field(default_factory=dict)
    lookups: int = 0
    faults: faults.FaultState = field(default_factory=faults.FaultState)

    def __post_init__(self) -> None:
        self.rng.seed(self.config.seed)

    def record_charge(self, key: str, charge_id: str) -> None:
        """Count one real charge event for ``key`` (more than one per key is a double charge)."""
        self.charges += 1
        self.charges_by_key[key] = self.charges_by_key.get(key, 0) + 1
        self.charge_ids.setdefault(key, []).append(charge_id)

    def charge_count(self, key: str) -> int:
        return self.charges_by_key.get(key, 0)

    @property
    def double_charged(self) -> list[str]:
        return [key for key, count in self.charges_by_key.items() if count > 1]

    def reset(self) -> None:
        """Forget every charge, stored answer and counter; the config is kept."""
        self.requests = 0
        self.charges = 0
        self.charges_by_key.clear()
        self.charge_ids.clear()
        self.answers.clear()
        self.stored.clear()
        self.lookups = 0
        self.faults.reset()

    def stats(self, *, with_keys: bool = True) -> dict[str, Any]:
        """The ``GET /_stats`` body; ``with_keys=False`` leaves out ``charges_by_key``."""
        result: dict[str, Any] = {
            "requests": self.requests,
            "charges": self.charges,
            "charged_keys": len(self.charges_by_key),
            "double_charged": self.double_charged,
            "answers": counts_by_status(self.answers),
            "lookups": self.lookups,
            "config": asdict(self.config),
            "protection": self.faults.stats(),
        }
        if with_keys:
            result["charges_by_key"] = dict(self.charges_by_key)
        return result

    def update_config(self, changes: dict[str, Any]) -> FakeGatewayConfig:
        """Apply a subset of knobs atomically; ``ValueError`` leaves the config unchanged."""
        candidate = apply_knobs(self.config, changes)
        candidate.validate()
        if "seed" in changes:
            self.rng.seed(candidate.seed)
        self.config = candidate
        return candidate


STATE_KEY: Final = web.AppKey("payproc_fake_gateway_state", GatewayState)
