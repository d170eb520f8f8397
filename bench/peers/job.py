"""The payment job both peers run, the way a team would write it for a threaded task queue.

Per message: validate the JSON payment with payproc's own ``PaymentRequest`` model (the same
validation work payproc does), ``POST /v1/charges`` to the gateway with
``Idempotency-Key: payment_id`` through a per-thread ``requests.Session`` (keep-alive), and
upsert the outcome row (``payments``: payment_id primary key, status, charge id, timestamps)
in one autocommit statement on a per-thread connection: ``sqlite3`` (WAL, the same pragmas as
payproc) or ``psycopg`` for PostgreSQL.

It does less than payproc per payment (no "processing" claim committed before the charge, no
attempt history, no outcome event): the comparison flatters the peers, not payproc.

Configuration comes from the environment: ``BENCH_GATEWAY_URL``, ``BENCH_DATABASE_URL``
(``sqlite:///path`` or ``postgresql://...``). Both peer modules also share ``shared_job`` (the
worker process's one job) and ``producer_main`` (their ``produce`` command line).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from schemas.payment import PaymentRequest

SCHEMA = """CREATE TABLE IF NOT EXISTS payments (
    payment_id VARCHAR(36) PRIMARY KEY,
    status VARCHAR(16) NOT NULL,
    gateway_charge_id VARCHAR(255),
    error_code VARCHAR(64),
    attempts INTEGER NOT NULL DEFAULT 1,
    started_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
)"""

UPSERT = """INSERT INTO payments
    (payment_id, status, gateway_charge_id, error_code, attempts, started_at, updated_at)
VALUES (%s, %s, %s, %s, 1, %s, %s)
ON CONFLICT (payment_id) DO UPDATE SET
    status = excluded.status,
    gateway_charge_id = excluded.gateway_charge_id,
    error_code = excluded.error_code,
    attempts = payments.attempts + 1,
    updated_at = excluded.updated_at"""


class TransientGatewayError(Exception):
    """The gateway failed in a way worth retrying (5xx, 429, timeout, connection error)."""


class ChargeJob:
    """Charges one payment and records the outcome; safe to share between threads."""

    def __init__(self, gateway_url: str, database_url: str, timeout: float = 5.0) -> None:
        self.charges_url = gateway_url.rstrip("/") + "/v1/charges"
        self.database_url = database_url
        self.timeout = timeout
        self._local = threading.local()

    @classmethod
    def from_env(cls) -> ChargeJob:
        return cls(os.environ["BENCH_GATEWAY_URL"], os.environ["BENCH_DATABASE_URL"])

    # ---- per-thread resources --------------------------------------------------------------

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
        return session

    def _db(self) -> Any:
        conn = getattr(self._local, "db", None)
        if conn is None:
            conn = connect(self.database_url)
            self._local.db = conn
        return conn

    # ---- the job -------------------------------------------------------------------------

    def run(self, payment: dict[str, Any]) -> str:
        started = time.time()
        request = PaymentRequest.model_validate(payment)
        try:
            response = self._session().post(
                self.charges_url,
                json=request.gateway_body(),
                headers={"Idempotency-Key": request.key},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise TransientGatewayError(str(exc)) from exc
        if response.status_code in (200, 201):
            status, charge_id, error = "succeeded", response.json()["id"], None
        elif response.status_code == 402:
            status, charge_id, error = "declined", None, "card_declined"
        elif response.status_code == 429 or response.status_code >= 500:
            raise TransientGatewayError(f"gateway answered {response.status_code}")
        else:
            status, charge_id, error = "rejected", None, f"http_{response.status_code}"
        self.record(request.key, status, charge_id, error, started)
        return status

    def record(
        self, payment_id: str, status: str, charge_id: str | None, error: str | None, started: float
    ) -> None:
        conn = self._db()
        params = (payment_id, status, charge_id, error, started, time.time())
        if isinstance(conn, sqlite3.Connection):
            conn.execute(UPSERT.replace("%s", "?"), params)
        else:
            conn.execute(UPSERT, params)


_shared: ChargeJob | None = None


def shared_job() -> ChargeJob:
    """This process's one ``ChargeJob``, made from the environment on first use: the worker
    makes it with its first task; a producer never does (it has no gateway URL)."""
    global _shared
    if _shared is None:
        _shared = ChargeJob.from_env()
    return _shared


def producer_main(
    prog: str, produce: Callable[[int, int, int, int], int], argv: list[str] | None
) -> int:
    """``prog produce --count N --seed S [--part i --parts k]``: publish part ``i`` of ``k`` of
    the ``N`` payments payproc's producer makes with seed ``S`` (``bench.peers.runs`` starts
    ``k`` of these in parallel)."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("command", choices=["produce"])
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--part", type=int, default=0)
    parser.add_argument("--parts", type=int, default=1)
    ns = parser.parse_args(argv)
    sent = produce(ns.count, ns.seed, ns.part, ns.parts)
    print(f"published {sent}", flush=True)
    return 0


def connect(database_url: str) -> Any:
    """An autocommit connection: ``sqlite3`` with payproc's pragmas, or ``psycopg``."""
    if database_url.startswith("sqlite:///"):
        conn = sqlite3.connect(
            database_url.removeprefix("sqlite:///"),
            timeout=30,
            isolation_level=None,
            check_same_thread=False,
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn
    import psycopg

    return psycopg.connect(database_url, autocommit=True)


def create_schema(database_url: str) -> None:
    conn = connect(database_url)
    try:
        conn.execute(SCHEMA)
    finally:
        conn.close()
