"""Smoke: one payment goes through the real broker, worker, store and fake gateway."""

from __future__ import annotations

import uuid

from processor.producer import payment_message, publish_bodies


async def test_payment_succeeds_end_to_end(start_worker, connection, topology, events, gateway):
    """A valid request is charged once and announced as payment.succeeded."""
    await start_worker(gateway_url=gateway.url)
    pid = str(uuid.uuid4())
    body = {
        "payment_id": pid,
        "amount": 1999,
        "currency": "EUR",
        "merchant_id": "m_1",
        "payment_method": "pm_card_visa",
    }
    await publish_bodies(connection, topology, [payment_message(body)])
    await events.wait_for(lambda ms: any(m.routing_key == "payment.succeeded" for m in ms))
    assert gateway.state.charge_count(pid) == 1
