"""Settings from the environment (prefix ``PAYPROC_``); a bad value stops start-up with one
line naming the setting."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from processor.errors import ConfigError
from processor.protection.breaker import BreakerRules
from retry.errors import PolicyError
from retry.policy import RetryPolicy, parse_delays

__all__ = ["ConfigError", "Settings", "load_settings"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYPROC_", extra="ignore")

    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    database_url: str = "sqlite:///./payproc.db"
    gateway_url: str = "http://127.0.0.1:8081"
    gateway_timeout: float = Field(default=5.0, gt=0, le=300)
    gateway: str = Field(default="payproc", pattern=r"^(payproc|stripe)$")
    """The gateway adapter: ``payproc`` (the SPEC's HTTP contract) or ``stripe`` (Stripe's API)."""
    stripe_api_key: SecretStr | None = Field(default=None, repr=False, validate_default=True)
    """Stripe secret key (``sk_test_...`` in test mode); required when ``gateway=stripe``."""
    stripe_api_base: str = "https://api.stripe.com"
    """Where the Stripe adapter sends its requests (a local Stripe-speaking server in tests)."""
    gateway_idempotency_ttl: float = Field(default=86_400.0, gt=0)
    """Seconds the gateway keeps an idempotency key (Stripe: 24 h)."""
    namespace: str = Field(default="payments", pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    prefetch: int = Field(default=100, ge=1, le=5000)
    retry_delays: Annotated[tuple[float, ...], NoDecode] = (1.0, 5.0, 30.0, 120.0, 600.0)
    max_attempts: int = Field(default=6, ge=1, le=100)
    delivery_limit: int = Field(default=10, ge=2, le=1000)
    poison_threshold: int = Field(default=3, ge=1, le=100)
    admin_token: str | None = Field(default=None, repr=False)
    admin_bind: str = "127.0.0.1:8080"
    metrics_bind: str = Field(default="127.0.0.1:9100", pattern=r"^(off|[^\s:]*:\d{1,5})$")
    """The worker's /metrics, /healthz and /readyz server; ``off`` disables it."""
    admin_tokens: str | None = Field(default=None, repr=False)
    """Named admin tokens, ``name:role:token`` comma-separated (roles: viewer, operator)."""
    admin_replay_rate: float = Field(default=500.0, gt=0, le=100_000)
    """Bulk replays publish at most this many messages per second (token bucket)."""
    admin_ingest_prefetch: int = Field(default=200, ge=1, le=5000)
    """Parked messages the admin's DLQ ingest consumer holds unacked at once."""
    admin_console_https: bool = False
    """The operator console (``/ui/``) is served over HTTPS: its session cookie is ``Secure``."""
    admin_session_ttl: float = Field(default=8 * 3600.0, ge=60, le=7 * 86_400)
    """Seconds a console sign-in lasts before the operator must sign in again."""
    admin_job_lease: float = Field(default=15.0, ge=1, le=3600)
    """Seconds an admin's lease on a replay job lasts unrenewed (renewed every third of it);
    a killed admin's jobs are taken over by another admin once it expired."""
    admin_job_poll: float = Field(default=1.0, gt=0, le=60)
    """Seconds between an admin's looks for runnable jobs and payment outcomes to follow."""
    admin_canary_timeout: float = Field(default=300.0, gt=0, le=86_400)
    """Seconds a canary waits for its payments to be final; still pending then counts as
    failed."""
    dlq_retention_days: float = Field(default=30.0, gt=0, le=36_500)
    """Discarded and replayed DLQ entries are purged this long after their last change
    (parked entries never are)."""
    dlq_purge_interval: float = Field(default=3600.0, gt=0, le=86_400)
    """Seconds between the admin's retention purges."""
    circuit_threshold: int = Field(default=20, ge=1, le=10_000)
    """Distinct payments that must have been seen before the circuit judges the gateway; 90%
    of them failing (across 2+ merchants when traffic allows) opens it."""
    circuit_cooldown: float = Field(default=5.0, gt=0, le=3600)
    """Seconds before an open circuit probes (doubles on a failed probe, up to the max)."""
    circuit_max_cooldown: float = Field(default=30.0, gt=0, le=3600)
    circuit_window: float = Field(default=30.0, gt=0, le=3600)
    """Seconds a payment's latest gateway answer counts as evidence."""
    circuit_min_merchants: int = Field(default=2, ge=1, le=1000)
    """Failing merchants needed to open, when the evidence holds that many merchants."""
    circuit_max_hold: float = Field(default=300.0, gt=0, le=86_400)
    """Seconds an open circuit spares failures; after that attempts count again."""
    gateway_rate_limit: float | None = Field(default=None, gt=0, le=1_000_000)
    """Gateway requests per second for the whole namespace, shared by its live workers."""
    store_patience: float = Field(default=120.0, gt=0, le=86_400)
    """Seconds a message waits for an unavailable database before it is returned."""
    startup_timeout: float = Field(default=30.0, ge=0, le=86_400)
    """Seconds a command waits at start for a broker or database that does not answer yet
    (``--wait``); 0 gives up at the first failure."""
    reconcile_interval: float = Field(default=5.0, gt=0, le=3600)
    """Seconds between reconciler passes over ``unknown`` payments (and their first back-off)."""
    reconcile_max_delay: float = Field(default=300.0, gt=0, le=86_400)
    """Longest back-off between two lookups of one payment the gateway cannot settle."""
    log_format: str = Field(default="text", pattern=r"^(text|json)$")
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")

    @field_validator("retry_delays", mode="before")
    @classmethod
    def _parse_delays(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return parse_delays(value)
            except PolicyError as exc:
                raise ValueError(str(exc)) from exc
        return value

    @field_validator("amqp_url")
    @classmethod
    def _amqp_scheme(cls, value: str) -> str:
        if not value.startswith(("amqp://", "amqps://")):
            raise ValueError("must start with amqp:// or amqps://")
        return value

    @field_validator("gateway_url", "stripe_api_base")
    @classmethod
    def _http_scheme(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("stripe_api_key")
    @classmethod
    def _stripe_key_when_stripe(cls, value: SecretStr | None, info: ValidationInfo) -> object:
        if info.data.get("gateway") == "stripe" and not (value and value.get_secret_value()):
            raise ValueError("required when PAYPROC_GATEWAY=stripe")
        return value

    @field_validator("database_url")
    @classmethod
    def _db_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql", "postgres://")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return value

    @model_validator(mode="after")
    def _policy_is_consistent(self) -> Settings:
        try:
            RetryPolicy(self.retry_delays, self.max_attempts)
        except PolicyError as exc:
            raise ValueError(f"retry_delays/max_attempts: {exc}") from exc
        return self

    @property
    def policy(self) -> RetryPolicy:
        return RetryPolicy(self.retry_delays, self.max_attempts)

    @property
    def breaker_rules(self) -> BreakerRules:
        return BreakerRules(
            min_payments=self.circuit_threshold,
            min_merchants=self.circuit_min_merchants,
            window_seconds=self.circuit_window,
            cooldown=self.circuit_cooldown,
            max_cooldown=max(self.circuit_max_cooldown, self.circuit_cooldown),
            max_hold=self.circuit_max_hold,
        )

    @property
    def lease_seconds(self) -> float:
        """How long a claimed payment is protected from a second, concurrent charge attempt."""
        return self.gateway_timeout * 3 + 5


def load_settings(**overrides: object) -> Settings:
    """Read settings; on a bad value raise ``ConfigError`` naming ``PAYPROC_<SETTING>``."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        name = str(first["loc"][0]) if first["loc"] else "settings"
        raise ConfigError(
            f"payproc: invalid setting PAYPROC_{name.upper()}: {first['msg']}"
        ) from None
