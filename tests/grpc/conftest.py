"""The gRPC service on a free port over the real broker, with a real channel to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import grpc
import pytest

from processor.config import Settings
from processor.grpc_api.codegen import Generated, load
from processor.grpc_api.service import RunningService, start_service
from retry.names import Names


@pytest.fixture(scope="session")
def pb() -> Generated:
    """The modules grpcio-tools generates from payments.proto (made on first use)."""
    return load()


@pytest.fixture
async def grpc_service(
    topology: Names, settings_factory: Callable[..., Settings]
) -> AsyncIterator[RunningService]:
    running = await start_service(settings_factory(), "127.0.0.1:0", declare=False)
    yield running
    await running.stop(grace=1)


@pytest.fixture
async def stub(grpc_service: RunningService, pb: Generated) -> AsyncIterator[object]:
    async with grpc.aio.insecure_channel(grpc_service.target) as channel:
        yield pb.pb2_grpc.PaymentsStub(channel)
