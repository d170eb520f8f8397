"""Amounts Stripe would refuse, refused before any call (pure: no I/O, no client library).

payproc amounts are integers in the currency's minor unit *as Stripe counts it*, passed to
Stripe unchanged:

* two-decimal currencies (USD, EUR, ...): ``1999`` is 19.99;
* zero-decimal currencies (JPY, KRW, ...): ``500`` is 500 yen, there is no smaller unit;
* three-decimal currencies (BHD, JOD, KWD, OMR, TND): ``5120`` is 5.120, and Stripe requires
  the last digit to be ``0`` (its payment partners settle in hundredths);
* ISK is zero-decimal in practice but two-decimal in Stripe's API: ``500`` is 5 kronur, and
  the amount must be a multiple of 100.

Stripe also refuses charges below a minimum (roughly 0.50 USD, listed per settlement currency)
and amounts of more than eight digits (twelve for IDR). The minimum applies to the amount
converted to the account's settlement currency, which payproc cannot know: it is checked here
only for the currencies Stripe lists, as a charge in the same currency; Stripe's own
``amount_too_small`` answer remains the authority for the rest (and is a rejection too).
"""

from __future__ import annotations

from schemas.outcome import ErrorInfo

ZERO_DECIMAL = frozenset(
    {
        "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA",
        "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF",
    }
)  # fmt: skip
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})
WHOLE_UNITS_IN_HUNDREDTHS = frozenset({"ISK"})
"""Two-decimal in the API, but only whole units are accepted: multiples of 100."""

MINIMUM_CHARGE: dict[str, int] = {
    "USD": 50, "AED": 200, "AUD": 50, "BGN": 100, "BRL": 50, "CAD": 50, "CHF": 50,
    "CZK": 1500, "DKK": 250, "EUR": 50, "GBP": 30, "HKD": 400, "HUF": 17500, "INR": 50,
    "JPY": 50, "MXN": 1000, "MYR": 200, "NOK": 300, "NZD": 50, "PLN": 200, "RON": 200,
    "SEK": 300, "SGD": 50, "THB": 1000,
}  # fmt: skip
"""Stripe's minimum charge amounts, in the API's minor units, for the listed currencies."""

MAX_DIGITS = 8
MAX_DIGITS_BY_CURRENCY = {"IDR": 12}


def decimals(currency: str) -> int:
    """How many decimals Stripe's ``amount`` carries for ``currency`` (ISO code, any case)."""
    code = currency.upper()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def refusal(amount: int, currency: str) -> ErrorInfo | None:
    """Why Stripe would refuse ``amount`` of ``currency``, or ``None`` when it would not."""
    code = currency.upper()
    if amount <= 0:
        return ErrorInfo(code="amount_too_small", message="the amount must be positive")
    digits = MAX_DIGITS_BY_CURRENCY.get(code, MAX_DIGITS)
    if amount >= 10**digits:
        return ErrorInfo(
            code="amount_too_large",
            message=f"Stripe accepts at most {digits} digits for {code}; got {amount}",
        )
    if code in THREE_DECIMAL and amount % 10:
        return ErrorInfo(
            code="invalid_amount_for_currency",
            message=f"{code} amounts must end in 0 at Stripe (round to the nearest ten); "
            f"got {amount}",
        )
    if code in WHOLE_UNITS_IN_HUNDREDTHS and amount % 100:
        return ErrorInfo(
            code="invalid_amount_for_currency",
            message=f"{code} amounts are two-decimal at Stripe but must be whole units "
            f"(a multiple of 100); got {amount}",
        )
    minimum = MINIMUM_CHARGE.get(code)
    if minimum is not None and amount < minimum:
        return ErrorInfo(
            code="amount_too_small",
            message=f"Stripe's minimum charge in {code} is {minimum} minor units; got {amount}",
        )
    return None
