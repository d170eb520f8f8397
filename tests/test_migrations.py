"""Schema migrations: ``payproc db upgrade``, the models/migrations match, and start-up checks."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlmodel import SQLModel

from processor.config import Settings
from processor.db import make_engine
from processor.migrate import SchemaBehind, current_revision, head_revision, upgrade
from processor.worker import Worker
from tests.support import pg
from tests.support.broker import PG_ADMIN_URL, require

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path):
    """An empty database of each kind (PostgreSQL: created here, dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    require(PG_ADMIN_URL, 5432, "PostgreSQL")
    name = f"payproc_mig_{uuid.uuid4().hex[:8]}"
    pg.create_database(PG_ADMIN_URL, name)
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        pg.drop_database(PG_ADMIN_URL, name)


async def test_upgrade_creates_a_schema_identical_to_the_models(empty_database: str):
    """After the migrations run, Alembic finds no difference between models and database."""
    engine = make_engine(empty_database)
    try:
        await upgrade(engine)
        assert await current_revision(engine) == head_revision()
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), SQLModel.metadata)
            )
        assert diff == []
        await upgrade(engine)  # idempotent
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


async def test_upgrade_counts_the_entries_of_jobs_created_before_the_counts(empty_database: str):
    """0004 fills ``replay_job_counts`` from the entries of the jobs that already exist: per
    state, skipped entries by reason, as the admin keeps them from then on."""
    engine = make_engine(empty_database)
    entries = [
        ("a", 0, "waiting", None),
        ("a", 1, "waiting", None),
        ("a", 2, "published", None),
        ("a", 3, "skipped", "payment_succeeded"),
        ("a", 4, "skipped", "payment_succeeded"),
        ("a", 5, "skipped", "lookup_unavailable"),
        ("b", 0, "succeeded", None),
    ]
    try:
        await upgrade(engine, "0003")
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO replay_job_entries (job_id, position, entry_id, state, note) "
                    "VALUES (:job, :position, :entry, :state, :note)"
                ),
                [
                    {"job": j, "position": p, "entry": f"{j}{p}", "state": s, "note": n}
                    for j, p, s, n in entries
                ],
            )
        await upgrade(engine)
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT job_id, state, note, entries FROM replay_job_counts")
            )
            counts = {tuple(row) for row in rows}
    finally:
        await engine.dispose()
    assert counts == {
        ("a", "waiting", "", 2),
        ("a", "published", "", 1),
        ("a", "skipped", "payment_succeeded", 2),
        ("a", "skipped", "lookup_unavailable", 1),
        ("b", "succeeded", "", 1),
    }


def test_db_upgrade_command_migrates_and_current_reports_it(empty_database: str):
    """`payproc db current` says behind on an empty database and up to date after upgrade."""
    env_args = ["--database-url", empty_database]

    def payproc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "processor", "db", *args, *env_args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    before = payproc("current")
    assert before.returncode == 1
    assert "behind" in before.stdout
    upgraded = payproc("upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"-> {head_revision()}" in upgraded.stdout
    after = payproc("current")
    assert after.returncode == 0
    assert "up to date" in after.stdout


async def test_worker_refuses_a_postgres_schema_that_is_behind(amqp_url: str):
    """A worker pointed at an unmigrated PostgreSQL database stops with what to run."""
    require(PG_ADMIN_URL, 5432, "PostgreSQL")
    name = f"payproc_mig_{uuid.uuid4().hex[:8]}"
    pg.create_database(PG_ADMIN_URL, name)
    try:
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
        worker = Worker(
            Settings(
                amqp_url=amqp_url,
                database_url=url,
                metrics_bind="off",
                namespace=f"mig-{uuid.uuid4().hex[:6]}",
            )
        )
        with pytest.raises(SchemaBehind, match="run `payproc db upgrade`"):
            await worker.run()
    finally:
        pg.drop_database(PG_ADMIN_URL, name)


async def test_worker_upgrades_the_embedded_sqlite_database(amqp_url: str, tmp_path: Path):
    """The SQLite default is migrated at start, so `make demo` needs no extra step."""
    url = f"sqlite:///{tmp_path / 'auto.db'}"
    from processor.migrate import ensure_current

    engine = make_engine(url)
    try:
        await ensure_current(engine, auto_upgrade=True)
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()
