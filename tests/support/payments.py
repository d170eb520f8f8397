"""Building payment requests and reading the store in tests."""

from __future__ import annotations

import uuid
from typing import Any

from processor.adapters.sql_store import SqlPaymentStore
from processor.db import make_engine
from processor.ports import PaymentSnapshot


def payment(amount: int = 1999, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "payment_id": str(uuid.uuid4()),
        "amount": amount,
        "currency": "EUR",
        "merchant_id": "m_123",
        "payment_method": "pm_card_visa",
        "customer_id": "c_42",
        "description": "Order 1001",
        "metadata": {"order_id": "1001"},
    }
    body.update(fields)
    return body


async def stored(database_url: str, payment_id: str) -> PaymentSnapshot | None:
    engine = make_engine(database_url)
    try:
        return await SqlPaymentStore(engine).get(payment_id)
    finally:
        await engine.dispose()
