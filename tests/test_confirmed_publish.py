"""The shared confirmed-publish helper on a real RabbitMQ: a publish that no queue takes is
an error, not a silent confirm, and every failure is one error type.

The worker's publisher (``processor.adapters.amqp_publisher``) and the admin's replay
publisher (``dlq_admin.amqp``) both publish through it.
"""

from __future__ import annotations

import asyncio

import pytest
from aio_pika.abc import AbstractRobustConnection
from pamqp.commands import Basic

from processor.adapters.amqp_publisher import AmqpPublisher
from processor.envelope import Envelope
from processor.errors import PublishFailed
from retry.confirmed_publish import ConfirmingChannel, Publication
from retry.errors import PublishNotConfirmed, RetryLayerError
from retry.names import REQUEST_ROUTING_KEY, Names
from schemas import headers as h
from tests.conftest import TEST_DELAYS

PROPERTIES = Basic.Properties(content_type="application/json", message_id="m-1")


async def test_a_mandatory_publish_no_queue_takes_is_not_confirmed(
    connection: AbstractRobustConnection, topology: Names
) -> None:
    """RabbitMQ confirms an unroutable publish; mandatory on this channel turns it into an
    error, while the same publish without mandatory counts as sent."""
    channel = ConfirmingChannel(connection)
    await channel.open()
    try:
        with pytest.raises(PublishNotConfirmed) as caught:
            await channel.publish(
                Publication(topology.exchange, "nobody.listens", b"{}", PROPERTIES, mandatory=True)
            )
        assert isinstance(caught.value, RetryLayerError)
        assert "NO_ROUTE" in str(caught.value)
        # An event nobody listens to is fine:
        await channel.publish(
            Publication(topology.exchange, "nobody.listens", b"{}", PROPERTIES, mandatory=False)
        )
    finally:
        await channel.close()


async def test_a_confirmed_publish_is_in_the_queue(
    connection: AbstractRobustConnection, topology: Names
) -> None:
    """A mandatory publish that routes returns once confirmed, and the message is there."""
    channel = ConfirmingChannel(connection)
    await channel.open()
    try:
        await channel.publish(
            Publication(
                topology.exchange, REQUEST_ROUTING_KEY, b'{"x": 1}', PROPERTIES, mandatory=True
            )
        )
    finally:
        await channel.close()
    reader = await connection.channel()
    queue = await reader.get_queue(topology.requests, ensure=False)
    async with asyncio.timeout(10):
        message = await queue.get(fail=True)
    assert (message.body, message.message_id) == (b'{"x": 1}', "m-1")
    await message.ack()
    await reader.close()


async def test_a_closed_or_unopened_channel_is_the_same_error(
    connection: AbstractRobustConnection, topology: Names
) -> None:
    """No channel yet, or a closed one: ``PublishNotConfirmed`` too, never an aio-pika type."""
    channel = ConfirmingChannel(connection)
    with pytest.raises(PublishNotConfirmed, match="not open"):
        await channel.publish(
            Publication(topology.exchange, REQUEST_ROUTING_KEY, b"{}", PROPERTIES, mandatory=True)
        )
    await channel.open()
    await channel.close()
    with pytest.raises(PublishNotConfirmed, match="closed"):
        await channel.publish(
            Publication(topology.exchange, REQUEST_ROUTING_KEY, b"{}", PROPERTIES, mandatory=True)
        )


async def test_the_worker_publisher_reports_a_missing_retry_queue_as_publish_failed(
    connection: AbstractRobustConnection, topology: Names
) -> None:
    """A retry copy for a queue that does not exist fails with the port's ``PublishFailed``
    naming the queue (the consumer then returns the payment to its queue); an existing
    retry queue takes the copy with the attempt count."""
    publisher = AmqpPublisher(connection, topology)
    await publisher.open()
    envelope = Envelope(body=b"{}", headers={h.ATTEMPT: 1}, message_id="pay-1")
    try:
        with pytest.raises(PublishFailed) as caught:
            await publisher.schedule_retry(envelope, 99.0, 2)
        assert topology.retry_queue(99.0) in str(caught.value)
        await publisher.schedule_retry(envelope, TEST_DELAYS[0], 2)
    finally:
        await publisher.close()
    reader = await connection.channel()
    queue = await reader.get_queue(topology.retry_queue(TEST_DELAYS[0]), ensure=False)
    async with asyncio.timeout(10):
        message = await queue.get(fail=True)
    assert message.headers[h.ATTEMPT] == 2
    await message.ack()
    await reader.close()
