"""AMQP header names payproc reads and writes.

Our own attempt header drives the retry ladder: a message that comes back from a retry queue
arrives with ``redelivered=False`` and ``x-death`` counting differs across broker versions, so
neither is trusted. Header values stay small; long error detail lives in the database.
"""

from __future__ import annotations

ATTEMPT = "x-payproc-attempt"
"""Gateway attempts already made for this payment in the current round (int)."""

REPLAY_OF = "x-payproc-replay-of"
"""Id of the DLQ entry this message is a replay of."""

DEFERRED = "x-payproc-deferred"
IN_DOUBT = "x-payproc-in-doubt"
"""Set on retry copies once an attempt of the payment ended in doubt (the gateway may have
charged): a later attempt that fails, whatever the failure, ends in a lookup, not a park."""
"""How many times the message was deferred because another worker held the payment."""

PARK_ID = "x-payproc-park-id"
"""Names one parking, deterministically (``payment_id:attempts:reason``, or the reason and a
hash of the body when the body has no trustworthy payment_id): a parking published twice
after a crash carries the same id, and the DLQ ingest stores it once."""

REASON = "x-payproc-reason"
ERROR_CODE = "x-payproc-error-code"
ERROR_MESSAGE = "x-payproc-error"
ATTEMPTS = "x-payproc-attempts"
PARKED_AT = "x-payproc-parked-at"
ORIGIN = "x-payproc-origin"
PAYMENT_ID = "x-payproc-payment-id"
MERCHANT_ID = "x-payproc-merchant-id"
HTTP_STATUS = "x-payproc-http-status"
EXCEPTION_TYPE = "x-payproc-exception"
TRACEPARENT = "traceparent"

BROKER_DEATH = "x-death"
BROKER_DELIVERY_COUNT = "x-delivery-count"

MAX_HEADER_TEXT = 200
"""Longest text value written into a header (frames have a size limit)."""
