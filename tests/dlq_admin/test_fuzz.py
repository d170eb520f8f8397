"""A schema-driven fuzz run over the OpenAPI document: no input makes any route answer 5xx."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from dlq_admin.runtime import start_server
from tests.dlq_admin.conftest import OPERATOR, Admin
from tests.dlq_admin.helpers import park, request_body

EXAMPLES_PER_OPERATION = 40


def _fuzz(spec: dict[str, Any], base_url: str) -> list[str]:
    """Fuzz every operation (valid and invalid inputs) against the live server; return failures."""
    schema = schemathesis.openapi.from_dict(spec)
    failures: list[str] = []
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        strategies = [operation.as_strategy(GenerationMode.POSITIVE, headers=dict(OPERATOR))]
        # An operation without parameters has no invalid input to generate.
        with contextlib.suppress(Exception):
            strategies.append(
                operation.as_strategy(GenerationMode.NEGATIVE, headers=dict(OPERATOR))
            )

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=st.one_of(strategies))
        def run(case: schemathesis.Case) -> None:
            nonlocal calls
            calls += 1
            response = case.call(base_url=base_url, headers=dict(OPERATOR), timeout=30)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code} "
                    f"{response.text[:200]}\n  {case.as_curl_command(headers=dict(OPERATOR))}"
                )

        run()
    assert calls >= 10 * EXAMPLES_PER_OPERATION // 2, calls
    return failures


async def test_no_route_answers_5xx_for_any_generated_input(admin: Admin) -> None:
    """Schemathesis-generated valid and invalid requests to every route never get a 5xx."""
    for _ in range(3):
        await park(admin.connection, admin.names, request_body())
    await park(admin.connection, admin.names, b"\xff not json", reason="invalid_message")
    await admin.wait_handled(4)
    assert admin.runtime.app is not None
    spec = (await admin.client.get("/openapi.json")).json()
    server = await start_server(admin.runtime.app)
    try:
        failures = await asyncio.wait_for(asyncio.to_thread(_fuzz, spec, server.url), 120)
    finally:
        await server.stop()
    assert not failures, "\n".join(failures[:10])
