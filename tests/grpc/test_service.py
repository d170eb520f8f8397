"""The gRPC front door end to end: real channel, real broker, in-process worker, fake gateway."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import grpc
import pytest

from processor.grpc_api.service import ServiceOptions
from tests.support.collect import saw
from tests.support.payments import payment


def charge_request(pb: Any, **fields: Any) -> Any:
    return pb.pb2.ChargeRequest(**payment(**fields))


def status_name(pb: Any, message: Any) -> str:
    return str(pb.pb2.PaymentStatus.Name(message.status))


async def test_charge_returns_the_final_success(start_worker, gateway, stub, pb):
    """A Charge waits for the worker and returns the succeeded result with its charge id."""
    await start_worker(gateway_url=gateway.url)
    request = charge_request(pb)

    result = await stub.Charge(request, timeout=20)

    assert result.payment_id == request.payment_id
    assert status_name(pb, result) == "PAYMENT_STATUS_SUCCEEDED"
    assert result.attempts == 1
    assert result.gateway_charge_id.startswith("ch_")
    assert not result.HasField("error")
    assert result.processed_at.seconds > 0
    assert gateway.state.charge_count(request.payment_id) == 1


async def test_charging_the_same_payment_twice_charges_once(start_worker, gateway, stub, pb):
    """A second Charge with the same payment_id returns the first result without charging."""
    await start_worker(gateway_url=gateway.url)
    request = charge_request(pb)

    first = await stub.Charge(request, timeout=20)
    second = await stub.Charge(request, timeout=20)

    assert second == first
    assert gateway.state.charge_count(request.payment_id) == 1
    assert gateway.state.requests == 1


async def test_concurrent_charges_of_one_payment_charge_once(start_worker, gateway, stub, pb):
    """Two Charges of one payment in flight at once both get the one result."""
    await start_worker(gateway_url=gateway.url)
    request = charge_request(pb)

    first, second = await asyncio.gather(
        stub.Charge(request, timeout=20), stub.Charge(request, timeout=20)
    )

    assert status_name(pb, first) == "PAYMENT_STATUS_SUCCEEDED"
    assert second == first
    assert gateway.state.charge_count(request.payment_id) == 1


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"currency": "eur"}, "currency"),
        ({"amount": 0}, "amount"),
        ({"merchant_id": ""}, "merchant_id: Field required"),
        ({"payment_id": "not-a-uuid"}, "payment_id"),
        ({"payment_method": "4242 4242 4242 4242"}, "payment_method"),
    ],
)
async def test_invalid_request_is_invalid_argument_naming_the_field(
    stub, pb, connection, names, fields, named
):
    """A request that breaks the schema is refused with INVALID_ARGUMENT and never queued."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Charge(charge_request(pb, **fields), timeout=5)

    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert named in caught.value.details()
    assert "4242" not in caught.value.details()
    channel = await connection.channel()
    queue = await channel.declare_queue(names.requests, passive=True)
    assert queue.declaration_result.message_count == 0
    await channel.close()


async def test_declined_payment_is_ok_with_status_declined(start_worker, gateway, stub, pb):
    """A 402 from the gateway is a business answer: OK, status DECLINED, the decline code."""
    await start_worker(gateway_url=gateway.url)

    result = await stub.Charge(charge_request(pb, amount=5402), timeout=20)

    assert status_name(pb, result) == "PAYMENT_STATUS_DECLINED"
    assert result.error.code == "card_declined"
    assert not result.HasField("gateway_charge_id")
    assert gateway.state.requests == 1


async def test_dead_lettered_payment_is_ok_with_status_dead_lettered(
    start_worker, gateway, stub, pb
):
    """A payment the gateway rejects is parked; Charge says so with OK and DEAD_LETTERED."""
    await start_worker(gateway_url=gateway.url)

    result = await stub.Charge(charge_request(pb, amount=5422), timeout=20)

    assert status_name(pb, result) == "PAYMENT_STATUS_DEAD_LETTERED"
    assert result.error.code


async def test_long_deadline_outlasts_transient_failures(start_worker, gateway, stub, pb, events):
    """While the gateway fails, a Charge with a long deadline returns once a retry succeeds."""
    gateway.state.update_config({"failure_rate": 1.0})
    await start_worker(gateway_url=gateway.url, max_attempts=20)
    request = charge_request(pb)

    call = asyncio.ensure_future(stub.Charge(request, timeout=30))
    await events.wait_for(saw(request.payment_id, "payment.retry_scheduled"))
    gateway.state.update_config({"failure_rate": 0.0})
    result = await call

    assert status_name(pb, result) == "PAYMENT_STATUS_SUCCEEDED"
    assert result.attempts >= 2
    assert gateway.state.charge_count(request.payment_id) == 1


async def test_short_deadline_is_exceeded_and_the_payment_still_completes(
    start_worker, gateway, stub, pb, events
):
    """A Charge whose deadline ends during retries gets DEADLINE_EXCEEDED; the payment goes on."""
    gateway.state.update_config({"failure_rate": 1.0})
    await start_worker(gateway_url=gateway.url, max_attempts=20)
    request = charge_request(pb)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Charge(request, timeout=0.5)

    assert caught.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert "GetPayment" in caught.value.details()
    pending = await stub.GetPayment(pb.pb2.GetPaymentRequest(payment_id=request.payment_id))
    assert status_name(pb, pending) in {"PAYMENT_STATUS_PROCESSING", "PAYMENT_STATUS_RETRYING"}

    gateway.state.update_config({"failure_rate": 0.0})
    await events.wait_for(saw(request.payment_id, "payment.succeeded"))
    done = await stub.GetPayment(pb.pb2.GetPaymentRequest(payment_id=request.payment_id))
    assert status_name(pb, done) == "PAYMENT_STATUS_SUCCEEDED"
    assert done.gateway_charge_id.startswith("ch_")
    again = await stub.Charge(request, timeout=20)
    assert again.gateway_charge_id == done.gateway_charge_id
    assert gateway.state.charge_count(request.payment_id) == 1


async def test_get_payment_of_an_unknown_payment_is_not_found(start_worker, gateway, stub, pb):
    """GetPayment answers NOT_FOUND for a payment id payproc never saw."""
    await start_worker(gateway_url=gateway.url)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetPayment(pb.pb2.GetPaymentRequest(payment_id=str(uuid.uuid4())), timeout=5)

    assert caught.value.code() is grpc.StatusCode.NOT_FOUND


async def test_get_payment_with_a_malformed_id_is_invalid_argument(stub, pb):
    """GetPayment refuses a payment id that is not a UUID."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetPayment(pb.pb2.GetPaymentRequest(payment_id="nope"), timeout=5)

    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("remaining", "expected"),
    [(None, 30.0), (10.0, 9.9), (0.5, 0.4), (0.1, 0.08), (0.001, None)],
)
def test_the_callers_deadline_becomes_the_rpc_timeout(remaining, expected):
    """The RPC timeout is the caller's remaining time less a margin; no deadline = default."""
    timeout = ServiceOptions().timeout_for(remaining)
    if expected is None:
        assert timeout is None
    else:
        assert timeout == pytest.approx(expected)
