"""What one benchmark run is asked to do (``Plan``) and what it measured (``Results``).

The scenarios (``bench.run``) fill a ``Results``; the report (``bench.report``, with its rows
in ``bench.rows`` and its targets in ``bench.targets``) only reads it. Keeping the data here
is what lets both sides import it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.figures import Figure

RATE_LIMIT_SHAPES = (  # the figures of ``bench.rate_limit``: key and shape, in order
    ("rate_limit.1w", "1 worker"),
    ("rate_limit.2w", "2 workers"),
    ("rate_limit.4w", "4 workers"),
    ("rate_limit.2w.churn", "2 -> 3 -> 2 workers (one added, one killed)"),
)


@dataclass(frozen=True)
class Plan:
    """Sizes and repetitions; ``full`` is ``make bench``, ``quick`` a smoke run."""

    name: str
    ceiling_count: int
    ceiling_reps: int
    zero_count: int
    zero_dbs: tuple[tuple[str, int], ...]  # (database, repetitions); the first is the headline
    zero_round_budget: float  # seconds: no further round of a database once this is spent
    latency: float
    latency_db: str
    latency_payproc_count: int
    latency_peer_count: int
    latency_reps: int
    retry_db: str
    retry_count: int
    retry_paced_count: int
    retry_paced_rate: float
    memory_count: int
    admin_entries: int
    admin_requests: int
    admin_replay: int
    sync_count: int
    rate_limit: float = 200.0  # PAYPROC_GATEWAY_RATE_LIMIT and the gateway's own limit
    rate_limit_seconds: float = 8.0  # of backlog at the limit per shape (1.5x for the churn)
    admin_dbs: tuple[str, ...] = ("postgres", "sqlite")
    jobs_entries: int = 100_000
    jobs_paced: int = 3_000
    jobs_paced_rate: float = 500.0
    jobs_dbs: tuple[str, ...] = ("postgres",)
    console_entries: int = 100_000
    console_requests: int = 50  # per page, after a warm-up
    console_dbs: tuple[str, ...] = ("postgres", "sqlite")

    @property
    def rate_limit_shapes(self) -> tuple[tuple[str, str], ...]:
        """The figures of the rate-limit scenario (``bench.rate_limit``): key and shape."""
        return RATE_LIMIT_SHAPES


FULL = Plan(
    name="full",
    ceiling_count=20_000,
    ceiling_reps=3,
    zero_count=20_000,
    zero_dbs=(("postgres", 3), ("sqlite", 1)),
    zero_round_budget=420,
    latency=0.05,
    latency_db="postgres",
    latency_payproc_count=8_000,
    latency_peer_count=2_400,
    latency_reps=2,
    retry_db="postgres",
    retry_count=20_000,
    retry_paced_count=3_000,
    retry_paced_rate=300,
    memory_count=50_000,
    admin_entries=100_000,
    admin_requests=200,
    admin_replay=3_000,
    sync_count=2_000,
)

QUICK = Plan(
    name="quick",
    ceiling_count=5_000,
    ceiling_reps=1,
    zero_count=3_000,
    zero_dbs=(("postgres", 1), ("sqlite", 1)),
    zero_round_budget=0,
    latency=0.05,
    latency_db="postgres",
    latency_payproc_count=2_000,
    latency_peer_count=600,
    latency_reps=1,
    retry_db="postgres",
    retry_count=3_000,
    retry_paced_count=600,
    retry_paced_rate=200,
    memory_count=5_000,
    admin_entries=10_000,
    admin_requests=50,
    admin_replay=1_000,
    rate_limit=100.0,
    rate_limit_seconds=5.0,
    sync_count=300,
    jobs_entries=10_000,
    jobs_paced=1_000,
    console_entries=10_000,
    console_requests=20,
    console_dbs=("sqlite",),
)


@dataclass(frozen=True)
class Latencies:
    """Response times of one kind of request, in milliseconds."""

    p50_ms: float
    p95_ms: float
    max_ms: float
    n: int


@dataclass(frozen=True)
class AdminFigures:
    """The DLQ admin API measured on one database (``bench.admin``)."""

    db: str
    entries: int
    insert_rate: int
    list: Latencies
    list_filtered: Latencies
    list_merchant: Latencies
    list_deep: Latencies
    stats: Latencies
    replay_requested: int
    replayed: int
    replay_seconds: float
    replay_rate: int
    replay_queue_depth: int
    job_batch: int | None
    """Entries one round of the replay job claimed, published and settled together."""


@dataclass(frozen=True)
class AdminFailed:
    """The admin benchmark could not be measured on one database."""

    db: str
    error: str


@dataclass(frozen=True)
class AdminResults:
    """The admin scenario: unavailable (with the reason), or figures per database."""

    available: bool
    reason: str = ""
    by_db: dict[str, AdminFigures | AdminFailed] = field(default_factory=dict)


CONSOLE_TARGET_P95_MS = 200.0  # server time per console page, p95


@dataclass(frozen=True)
class PageTime:
    """One console page (``bench.console``): its name, the path fetched, its response times."""

    page: str
    path: str
    latencies: Latencies


@dataclass(frozen=True)
class ConsoleFigures:
    """The operator console measured on one database: every page at ``entries`` entries."""

    db: str
    entries: int
    pages: list[PageTime]

    @property
    def worst(self) -> PageTime:
        """The page with the highest p95 (the one the target is judged on)."""
        return max(self.pages, key=lambda p: p.latencies.p95_ms)

    @property
    def worst_p95_ms(self) -> float:
        return self.worst.latencies.p95_ms

    @property
    def within_target(self) -> bool:
        return self.worst_p95_ms < CONSOLE_TARGET_P95_MS


@dataclass(frozen=True)
class ConsoleResults:
    """The console scenario: unavailable (with the reason), or figures per database."""

    available: bool
    reason: str | None = None
    by_db: dict[str, ConsoleFigures | AdminFailed] = field(default_factory=dict)


@dataclass(frozen=True)
class ReplayJobFigures:
    """Replay jobs measured on one database (``bench.replay_jobs``)."""

    db: str
    entries: int
    paced_rate: float  # asked for
    paced_measured: float  # first to last publish
    paced_published: int
    sustained_rate: float  # the big job, first to last publish
    sustained_published: int
    sustained_seconds: float
    list_while_running: Latencies
    job_view_while_running: Latencies
    queue_depth: int


@dataclass(frozen=True)
class ReplayJobsFailed:
    """The replay-job benchmark could not be measured on one database."""

    db: str
    error: str


@dataclass(frozen=True)
class SyncFigures:
    """Synchronous charges through the gRPC front door (``bench.sync_rpc``)."""

    name: str
    via: str
    concurrency: int
    count: int
    errors: int
    outcomes: dict[str, int]
    seconds: float
    charges_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass(frozen=True)
class SyncFailed:
    """Why the synchronous-charge benchmark has no figures."""

    error: str


@dataclass
class Results:
    """Everything one ``python -m bench.run`` measured, keyed as the scenarios add it."""

    plan: Plan
    machine: dict[str, str] = field(default_factory=dict)
    background_busy: float = 0.0
    figures: dict[str, Figure] = field(default_factory=dict)
    admin: AdminResults | None = None
    console: ConsoleResults | None = None
    replay_jobs: dict[str, ReplayJobFigures | ReplayJobsFailed] | None = None
    sync: SyncFigures | SyncFailed | None = None
    scenario_seconds: dict[str, float] = field(default_factory=dict)
    total_seconds: float = 0.0
    scenarios: tuple[str, ...] = ()

    def add(self, figure: Figure) -> Figure:
        self.figures[figure.key] = figure
        return figure

    def figure(self, key: str) -> Figure | None:
        """The figure under ``key``, measured or failed; ``None`` when it never ran."""
        return self.figures.get(key)

    def measured(self, key: str) -> Figure | None:
        """The figure under ``key`` when it has runs and no error, else ``None``."""
        figure = self.figures.get(key)
        return figure if figure is not None and figure.ok else None
