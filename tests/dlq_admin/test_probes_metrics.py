"""The admin API's /readyz and /metrics."""

from __future__ import annotations

import httpx

from dlq_admin.runtime import AdminRuntime, start_server


async def test_readyz_and_metrics_report_the_dlq(settings_factory, topology):
    """A started admin is ready; /metrics needs a token and shows DLQ gauges and counters."""
    settings = settings_factory(admin_token="ops-token-123")
    async with AdminRuntime(settings) as runtime:
        assert runtime.app is not None
        server = await start_server(runtime.app)
        try:
            async with httpx.AsyncClient(base_url=server.url) as client:
                ready = await client.get("/readyz")
                anonymous = await client.get("/metrics")
                metrics = await client.get(
                    "/metrics", headers={"Authorization": "Bearer ops-token-123"}
                )
        finally:
            await server.stop()
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": True, "broker": True, "ingest": True}
    assert anonymous.status_code == 401
    assert metrics.status_code == 200
    assert 'payproc_dlq_entries{status="parked"} 0.0' in metrics.text
    assert "payproc_dlq_queue_depth 0.0" in metrics.text
    assert "payproc_dlq_oldest_parked_age_seconds 0.0" in metrics.text
