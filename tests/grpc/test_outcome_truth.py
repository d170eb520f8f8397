"""gRPC and outcome truth: a payment whose outcome is unknown is never answered as failed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import grpc
import pytest

from dlq_admin.cli.reconcile import reconcile_once
from processor.config import Settings
from processor.rpc_client import ChargeTimeout, RpcClient
from tests.support.collect import saw
from tests.support.payments import payment


async def test_unknown_outcome_is_deadline_exceeded_then_reconciled(
    start_worker, gateway, stub, pb, events, settings_factory: Callable[..., Settings]
):
    """Charged, answer lost, lookups down: Charge gets DEADLINE_EXCEEDED (not a failure),
    GetPayment shows UNKNOWN; `payproc reconcile` settles it to SUCCEEDED once lookups work."""
    gateway.state.update_config(
        {"charge_then_timeout_rate": 1.0, "hang_seconds": 10.0, "lookup_failure_rate": 1.0}
    )
    await start_worker(gateway_url=gateway.url, gateway_timeout=0.5, max_attempts=1)
    request = pb.pb2.ChargeRequest(**payment())

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Charge(request, timeout=4)
    assert caught.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    await events.wait_for(saw(request.payment_id, "payment.unknown"))
    unknown = await stub.GetPayment(pb.pb2.GetPaymentRequest(payment_id=request.payment_id))
    assert pb.pb2.PaymentStatus.Name(unknown.status) == "PAYMENT_STATUS_UNKNOWN"

    settings = settings_factory(gateway_url=gateway.url)
    still = await reconcile_once(settings)
    # membership: on PostgreSQL the test run shares one payments table
    assert request.payment_id in still["still_unknown"]

    gateway.state.update_config({"lookup_failure_rate": 0.0})
    report = await reconcile_once(settings)
    assert request.payment_id in report["charged"]
    settled = await stub.GetPayment(pb.pb2.GetPaymentRequest(payment_id=request.payment_id))
    assert pb.pb2.PaymentStatus.Name(settled.status) == "PAYMENT_STATUS_SUCCEEDED"
    assert settled.gateway_charge_id == gateway.state.charge_ids[request.payment_id][0]
    await events.wait_for(saw(request.payment_id, "payment.succeeded"))
    assert gateway.state.charge_count(request.payment_id) == 1


async def test_rpc_call_is_not_ended_by_an_unknown_reply(
    start_worker,
    gateway,
    events,
    amqp_url: str,
    topology,
    settings_factory: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
):
    """The worker's ``unknown`` reply is not an answer: the RPC call keeps waiting and ends in
    ``ChargeTimeout`` (what gRPC turns into DEADLINE_EXCEEDED), logged at INFO, no warning."""
    caplog.set_level(logging.INFO, logger="payproc.rpc")
    gateway.state.update_config(
        {"charge_then_timeout_rate": 1.0, "hang_seconds": 10.0, "lookup_failure_rate": 1.0}
    )
    await start_worker(gateway_url=gateway.url, gateway_timeout=0.5, max_attempts=1)
    body = payment()
    client = await RpcClient.connect(amqp_url, topology.namespace)
    try:
        call = asyncio.create_task(client.charge(body, timeout=8))
        await events.wait_for(saw(body["payment_id"], "payment.unknown"))
        with pytest.raises(ChargeTimeout):
            await call
        assert (client.stats.pending, client.stats.replied, client.stats.dropped) == (1, 0, 0)
    finally:
        await client.close()
    # Leave nothing unknown in a database other tests share (PostgreSQL runs).
    gateway.state.update_config({"lookup_failure_rate": 0.0})
    report = await reconcile_once(settings_factory(gateway_url=gateway.url))
    assert body["payment_id"] in report["charged"]
    rpc_records = [r for r in caplog.records if r.name == "payproc.rpc"]
    assert [r.levelno for r in rpc_records] == [logging.INFO]
    assert "outcome unknown" in rpc_records[0].getMessage()
