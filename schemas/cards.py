"""Card-number detection and redaction.

payproc only ever carries payment-method *tokens*. Anything in a free-text field that looks
like a primary account number (13-19 digits, optionally grouped by spaces or dashes, that
passes the Luhn check) is treated as a card number: the message is refused and the digits
are masked before the body is parked, logged or stored.

Only free-text fields are scanned (see ``schemas.payment``), never the whole body: about one
random UUID in 280 ends in twelve decimal digits, so a body-wide rule would park real payments.
"""

from __future__ import annotations

import re

# 13-19 contiguous digits, or the printed groupings of real cards (4-4-4-4[-1..3] and the
# 4-6-4/5 of Amex and Diners) with one kind of separator. Free-form digit runs with dashes
# are not candidates: UUID segments such as "1234-123456789012" would be.
_CANDIDATE = re.compile(
    r"(?<!\d)(?<!\d[ -])"
    # A bare run must not be glued to letters or digits: inside hex ids such as
    # "ch_fa62976156896150026ed" a Luhn-valid run of digits is chance, not a card.
    r"(?:(?<![0-9A-Za-z])\d{13,19}(?![0-9A-Za-z])"
    r"|\d{4} \d{4} \d{4} \d{4}(?: \d{1,3})?"
    r"|\d{4} \d{6} \d{4,5}"
    # Dashed groups must stand apart from hex characters: inside a UUID they never do.
    r"|(?<![0-9A-Fa-f])(?<![0-9A-Fa-f]-)\d{4}-\d{4}-\d{4}-\d{4}(?:-\d{1,3})?(?!-?[0-9A-Fa-f])"
    r"|(?<![0-9A-Fa-f])(?<![0-9A-Fa-f]-)\d{4}-\d{6}-\d{4,5}(?!-?[0-9A-Fa-f]))"
    r"(?![ -]?\d)"
)
MASK = "[REDACTED-PAN]"


def luhn_valid(digits: str) -> bool:
    """Return True when ``digits`` (only 0-9) passes the Luhn checksum."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _is_card_number(candidate: str) -> bool:
    digits = candidate.replace(" ", "").replace("-", "")
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


def contains_card_number(text: str) -> bool:
    """True when ``text`` holds a Luhn-valid 13-19 digit sequence."""
    return any(_is_card_number(m.group(0)) for m in _CANDIDATE.finditer(text))


def redact_card_numbers(text: str) -> str:
    """Replace every Luhn-valid 13-19 digit sequence in ``text`` with a mask."""

    def _mask(match: re.Match[str]) -> str:
        return MASK if _is_card_number(match.group(0)) else match.group(0)

    return _CANDIDATE.sub(_mask, text)
