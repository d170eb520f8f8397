"""A local server speaking the subset of Stripe's API the Stripe adapter uses.

For the end-to-end tests and ``payproc demo --gateway stripe`` (Stripe's own mock server
cannot be built here). It keeps an honest ledger of the charges it makes and follows
Stripe's documented behaviour where payproc depends on it:

* ``POST /v1/payment_intents`` (form-encoded, ``confirm=true``): creates and confirms; a
  ``sk_test_`` key is required (anything else: 401).
* ``Idempotency-Key``: the same key with the same parameters returns the stored answer with
  ``Idempotent-Replayed: true``; with other parameters a 400 ``idempotency_error``. Answers to
  requests that failed validation (400) are not stored. One key is served one at a time.
* ``GET /v1/payment_intents/{id}`` and ``GET /v1/payment_intents/search`` with
  ``query=metadata['payment_id']:'<id>'``; ``search_lag`` hides intents younger than that, as
  Stripe's search index lags behind writes.
* Outcomes: ``amount % 1000 == 402`` and ``pm_card_chargeDeclined*`` decline (402
  ``card_error``), ``pm_card_authenticationRequired`` is declined ``authentication_required``
  as Stripe does off-session, ``amount % 1000 == 422`` is a 400 ``invalid_request_error``,
  ``pm_sepa_debit`` / ``pm_usBankAccount*`` stay ``processing`` for ``processing_seconds``
  then succeed; anything else succeeds.
* Faults, drawn from ``random.Random(seed)``: a 500 with ``Stripe-Should-Retry: true`` before
  executing (``failure_rate``), a 429 with ``Retry-After`` (``rate_limit_rate``), a hang
  before executing (``timeout_rate``) and a charge whose answer is lost in a hang
  (``charge_then_timeout_rate``).

Admin routes (loopback use only): ``GET /_stats`` (``?summary=1`` leaves out the per-payment
ledger), ``POST /_config`` (JSON knobs), ``GET /healthz``.

Modules: ``state`` (knobs and ledger), ``intents`` (validation and outcomes), ``app`` (routes
and serving), ``cli`` (``python -m processor.fake_stripe``). What it shares with the fake
gateway is in ``processor.fake_server``.
"""

from processor.fake_stripe.app import RunningStripe, create_app, start_fake_stripe
from processor.fake_stripe.state import STATE, FakeStripeConfig, StripeState

__all__ = [
    "STATE",
    "FakeStripeConfig",
    "RunningStripe",
    "StripeState",
    "create_app",
    "start_fake_stripe",
]
