"""Replay, edit-and-replay and discard through the real broker, database and worker."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import orjson
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from processor.producer import payment_message, publish_bodies
from schemas import headers as h
from schemas.dlq_tables import DlqEntryRow
from schemas.tables import PaymentRow, utcnow
from tests.dlq_admin.conftest import OPERATOR, Admin
from tests.dlq_admin.helpers import park, queue_depth, request_body
from tests.support.collect import Collector


def _routing_keys(events: Collector, payment_id: str) -> list[str]:
    return [e["routing_key"] for e in events.events_for(payment_id)]


async def _has_event(events: Collector, payment_id: str, key: str) -> None:
    await events.wait_for(lambda _ms: key in _routing_keys(events, payment_id))


async def _only_entry(admin: Admin, **params: Any) -> dict[str, Any]:
    [item] = await admin.entries(**params)
    return item


async def _published(admin: Admin) -> int:
    assert admin.runtime.publisher is not None
    return admin.runtime.publisher.published


async def test_edit_and_replay_fixes_a_rejected_payment(
    admin: Admin, start_worker, gateway, events: Collector, connection: AbstractRobustConnection
) -> None:
    """A payment rejected for its amount is edited, replayed, charged once and kept auditable."""
    await start_worker(gateway_url=gateway.url)
    body = request_body(amount=1400)  # the fake gateway answers 400 (nothing stored)
    pid = body["payment_id"]
    await publish_bodies(connection, admin.names, [payment_message(body)])
    await admin.wait_handled(1)
    entry = await _only_entry(admin, payment_id=pid)
    assert entry["reason"] == "gateway_rejected"
    assert entry["error"]["http_status"] == 400

    fixed = {**body, "amount": 1999}
    response = await admin.client.post(
        f"/dlq/messages/{entry['id']}/replay", json={"payload": fixed}, headers=OPERATOR
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["status"] == "replayed"
    assert result["edited"] is True
    assert result["replayed_by"] == "alice"

    await _has_event(events, pid, "payment.succeeded")
    assert "payment.replayed" in _routing_keys(events, pid)
    assert gateway.state.charge_count(pid) == 1
    payment = await admin.get(f"/payments/{pid}")
    assert payment["status"] == "succeeded"
    assert payment["gateway_charge_id"]

    detail = await admin.get(f"/dlq/messages/{entry['id']}")
    assert detail["status"] == "replayed"
    assert detail["body"]["amount"] == 1400  # the original body stays in the entry
    assert detail["replayed_body"]["amount"] == 1999
    assert [(a["outcome"], a["http_status"], a["replay_of"]) for a in detail["history"]] == [
        ("rejected", 400, None),
        ("succeeded", 200, entry["id"]),
    ]
    assert detail["payment"]["status"] == "succeeded"

    again = await admin.client.post(f"/dlq/messages/{entry['id']}/replay", headers=OPERATOR)
    assert again.status_code == 409
    assert again.json()["code"] == "already_replayed"


async def test_replaying_a_succeeded_payment_is_refused_and_publishes_nothing(
    admin: Admin, start_worker, gateway, events: Collector, connection: AbstractRobustConnection
) -> None:
    """A stale parked copy of a payment that has since succeeded is refused with 409."""
    await start_worker(gateway_url=gateway.url)
    body = request_body()
    pid = body["payment_id"]
    await publish_bodies(connection, admin.names, [payment_message(body)])
    await _has_event(events, pid, "payment.succeeded")
    await park(admin.connection, admin.names, body)  # an earlier copy, parked
    await admin.wait_handled(1)
    entry = await _only_entry(admin, payment_id=pid)

    for request in ({}, {"payload": {**body, "amount": 2999}}):
        response = await admin.client.post(
            f"/dlq/messages/{entry['id']}/replay", json=request or None, headers=OPERATOR
        )
        assert response.status_code == 409, response.text
        assert response.json()["code"] == "payment_succeeded"
    assert await _published(admin) == 0
    assert gateway.state.charge_count(pid) == 1
    assert (await admin.get(f"/dlq/messages/{entry['id']}"))["status"] == "parked"


async def test_ten_concurrent_replays_of_one_entry_publish_it_once(
    admin: Admin, connection: AbstractRobustConnection
) -> None:
    """Ten simultaneous replays: one 200, nine 409, exactly one message in N.requests."""
    await park(admin.connection, admin.names)
    await admin.wait_handled(1)
    entry = await _only_entry(admin)

    responses = await asyncio.gather(
        *(
            admin.client.post(f"/dlq/messages/{entry['id']}/replay", headers=OPERATOR)
            for _ in range(10)
        )
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [409] * 9
    assert await _published(admin) == 1
    assert await queue_depth(connection, admin.names.requests) == 1
    assert (await admin.get(f"/dlq/messages/{entry['id']}"))["status"] == "replayed"


async def test_a_replay_has_a_fresh_attempt_budget_and_names_its_entry(
    admin: Admin, connection: AbstractRobustConnection
) -> None:
    """The replayed copy carries x-payproc-replay-of and traceparent, never the old attempts."""
    body = request_body()
    await park(
        admin.connection,
        admin.names,
        body,
        attempts=4,
        reason="retries_exhausted",
        extra={
            h.ATTEMPT: 4,
            h.TRACEPARENT: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        },
    )
    await admin.wait_handled(1)
    entry = await _only_entry(admin)

    channel = await connection.channel()
    queue = await channel.get_queue(admin.names.requests, ensure=False)
    got: asyncio.Future[AbstractIncomingMessage] = asyncio.get_running_loop().create_future()

    async def take(message: AbstractIncomingMessage) -> None:
        await message.ack()
        if not got.done():
            got.set_result(message)

    await queue.consume(take)
    response = await admin.client.post(f"/dlq/messages/{entry['id']}/replay", headers=OPERATOR)
    assert response.status_code == 200
    message = await asyncio.wait_for(got, 10)
    await channel.close()

    headers = dict(message.headers or {})
    assert headers[h.REPLAY_OF] == entry["id"]
    assert h.ATTEMPT not in headers
    assert headers[h.TRACEPARENT].startswith("00-4bf92f35")
    assert message.message_id == body["payment_id"]
    assert message.content_type == "application/json"
    assert orjson.loads(message.body) == body


async def test_a_replay_that_fails_again_is_parked_as_a_new_linked_entry(
    admin: Admin, start_worker, gateway, connection: AbstractRobustConnection
) -> None:
    """A replay rejected again becomes a second entry linked to the first; history shows both."""
    await start_worker(gateway_url=gateway.url)
    body = request_body(amount=1422)  # 422, stored by the gateway: the replay fails again
    pid = body["payment_id"]
    await publish_bodies(connection, admin.names, [payment_message(body)])
    await admin.wait_handled(1)
    first = await _only_entry(admin, payment_id=pid)

    response = await admin.client.post(f"/dlq/messages/{first['id']}/replay", headers=OPERATOR)
    assert response.status_code == 200
    await admin.wait_handled(2)

    [second] = await admin.entries(payment_id=pid, status="parked")
    assert second["id"] != first["id"]
    assert second["replay_of"] == first["id"]
    old = await admin.get(f"/dlq/messages/{first['id']}")
    assert old["status"] == "replayed"
    assert old["replayed_as"] == [second["id"]]
    new = await admin.get(f"/dlq/messages/{second['id']}")
    assert [r["id"] for r in new["rounds"]] == [first["id"], second["id"]]
    assert [r["status"] for r in new["rounds"]] == ["replayed", "parked"]
    assert [(a["attempt"], a["http_status"], a["replay_of"]) for a in new["history"]] == [
        (1, 422, None),
        (1, 422, first["id"]),
    ]
    assert gateway.state.charge_count(pid) == 0


async def test_an_invalid_edit_is_a_422_naming_the_field_and_keeps_the_entry(
    admin: Admin,
) -> None:
    """Edited payloads are validated as the worker does; a bad one changes and publishes nothing."""
    body = request_body()
    await park(admin.connection, admin.names, body)
    await admin.wait_handled(1)
    entry = await _only_entry(admin)
    url = f"/dlq/messages/{entry['id']}/replay"

    cases = [
        ({**body, "amount": -5}, "amount"),
        ({**body, "currency": "euro"}, "currency"),
        ({**body, "colour": "red"}, "colour"),
        ({k: v for k, v in body.items() if k != "merchant_id"}, "merchant_id"),
        ({**body, "payment_method": "4111 1111 1111 1111"}, "payment_method"),
        ({**body, "payment_id": "6f1c1f0e-0000-4000-8000-000000000000"}, "payment_id"),
    ]
    for payload, field in cases:
        response = await admin.client.post(url, json={"payload": payload}, headers=OPERATOR)
        assert response.status_code == 422, (field, response.text)
        answer = response.json()
        assert field in answer["detail"], answer
        assert any(field in map(str, e["loc"]) for e in answer["errors"]), answer
        assert "4111" not in response.text

    for bad in ({"payload": [1, 2]}, {"payload": "x"}, {"other": 1}):
        response = await admin.client.post(url, json=bad, headers=OPERATOR)
        assert response.status_code == 422, response.text
    response = await admin.client.post(
        url, content=b"{not json", headers={**OPERATOR, "content-type": "application/json"}
    )
    assert response.status_code == 422

    detail = await admin.get(f"/dlq/messages/{entry['id']}")
    assert detail["status"] == "parked"
    assert detail["body"] == body
    assert detail["replayed_body"] is None
    assert await _published(admin) == 0


async def test_a_replay_the_broker_does_not_confirm_leaves_the_entry_parked(
    admin: Admin, connection: AbstractRobustConnection
) -> None:
    """With N.requests unbound the mandatory publish comes back: 503, entry still parked."""
    await park(admin.connection, admin.names)
    await admin.wait_handled(1)
    entry = await _only_entry(admin)
    channel = await connection.channel()
    queue = await channel.get_queue(admin.names.requests, ensure=False)
    await queue.unbind(admin.names.exchange, "payment.request")
    try:
        response = await admin.client.post(f"/dlq/messages/{entry['id']}/replay", headers=OPERATOR)
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "unavailable"
        assert (await admin.get(f"/dlq/messages/{entry['id']}"))["status"] == "parked"
    finally:
        await queue.bind(admin.names.exchange, "payment.request")
        await channel.close()
    response = await admin.client.post(f"/dlq/messages/{entry['id']}/replay", headers=OPERATOR)
    assert response.status_code == 200
    assert await queue_depth(connection, admin.names.requests) == 1


async def test_discard_keeps_the_entry_with_status_discarded(admin: Admin) -> None:
    """Discard never deletes: the entry stays listed as discarded and can no longer be replayed."""
    await park(admin.connection, admin.names)
    await park(admin.connection, admin.names)
    await admin.wait_handled(2)
    first, second = await admin.entries()

    response = await admin.client.delete(
        f"/dlq/messages/{first['id']}", params={"note": "duplicate order"}, headers=OPERATOR
    )
    assert response.status_code == 200
    assert response.json()["status"] == "discarded"
    assert response.json()["discarded_by"] == "alice"
    again = await admin.client.delete(f"/dlq/messages/{first['id']}", headers=OPERATOR)
    assert again.status_code == 200  # idempotent

    replay = await admin.client.post(f"/dlq/messages/{first['id']}/replay", headers=OPERATOR)
    assert replay.status_code == 409
    assert replay.json()["code"] == "entry_discarded"

    await admin.client.post(f"/dlq/messages/{second['id']}/replay", headers=OPERATOR)
    refused = await admin.client.delete(f"/dlq/messages/{second['id']}", headers=OPERATOR)
    assert refused.status_code == 409

    assert {i["status"] for i in await admin.entries()} == {"discarded", "replayed"}
    assert (await admin.get("/dlq/stats"))["by_status"]["discarded"] == 1


async def test_payments_route_reads_the_workers_table(admin: Admin) -> None:
    """GET /payments/{id} shows the stored payment, with last_error, and 404 for unknown ids."""
    engine = admin.runtime.engine
    assert engine is not None
    row = PaymentRow(
        payment_id="0b7d6c1e-3c1f-4a52-9a4e-8f0f4c2a9d11",
        status="dead_lettered",
        attempts=2,
        amount=1999,
        currency="EUR",
        merchant_id="m_1",
        fingerprint="1999:EUR:m_1",
        last_error_code="amount_invalid",
        last_error_message="bad amount",
        dead_letter_reason="gateway_rejected",
        updated_at=utcnow(),
    )
    table = PaymentRow.__table__  # type: ignore[attr-defined]
    async with engine.begin() as conn:
        await conn.execute(table.delete().where(table.c.payment_id == row.payment_id))
        await conn.execute(table.insert().values(**row.model_dump()))
    payment = await admin.get(f"/payments/{row.payment_id}")
    assert payment["status"] == "dead_lettered"
    assert payment["last_error"] == {"code": "amount_invalid", "message": "bad amount"}
    assert set(payment) >= {
        "payment_id",
        "status",
        "attempts",
        "gateway_charge_id",
        "last_error",
        "updated_at",
    }


async def test_a_replay_abandoned_mid_publish_can_be_taken_over_once_stale(
    admin: Admin, connection: AbstractRobustConnection
) -> None:
    """An entry stuck in 'replaying' (its admin died) is 409 while fresh, replayable once stale."""
    await park(admin.connection, admin.names)
    await admin.wait_handled(1)
    entry = await _only_entry(admin)
    engine = admin.runtime.engine
    assert engine is not None
    table = DlqEntryRow.__table__  # type: ignore[attr-defined]

    async def stuck_since(seconds_ago: float) -> None:
        async with engine.begin() as conn:
            await conn.execute(
                table.update()
                .where(table.c.id == entry["id"])
                .values(status="replaying", updated_at=utcnow() - timedelta(seconds=seconds_ago))
            )

    url = f"/dlq/messages/{entry['id']}/replay"
    await stuck_since(10)
    fresh = await admin.client.post(url, headers=OPERATOR)
    assert fresh.status_code == 409
    assert fresh.json()["code"] == "replay_in_progress"
    await stuck_since(3600)
    taken = await admin.client.post(url, headers=OPERATOR)
    assert taken.status_code == 200, taken.text
    assert await queue_depth(connection, admin.names.requests) == 1
