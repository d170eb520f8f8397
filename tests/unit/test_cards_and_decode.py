"""Card-number detection and message decoding: refuse what is wrong, say why, echo no PAN."""

from __future__ import annotations

import random
import re
import uuid
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from processor.decode import Invalid, decode_request, validate_payload
from schemas.cards import MASK, contains_card_number, luhn_valid, redact_card_numbers
from schemas.payment import MAX_BODY_BYTES, PaymentRequest

PAN = "4111111111111111"
TEST_CARDS = [
    "4111111111111111",  # Visa
    "4242424242424242",  # Visa
    "5555555555554444",  # Mastercard
    "378282246310005",  # Amex, 15 digits
    "30569309025904",  # Diners, 14 digits
    "6011111111111117",  # Discover
    "3530111333300000",  # JCB
    "4222222222222",  # Visa, 13 digits
    "6304000000000000000",  # Maestro-like, 19 digits
]
PRINTED_FORMS = [
    "4111 1111 1111 1111",
    "4111-1111-1111-1111",
    "3782 822463 10005",
    "3782-822463-10005",
    "6304 0000 0000 0000 000",
]


def body(**fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "payment_id": str(uuid.uuid4()),
        "amount": 1999,
        "currency": "EUR",
        "merchant_id": "m_123",
        "payment_method": "pm_card_visa",
        "customer_id": "c_42",
        "description": "Order 1001",
        "metadata": {"order_id": "1001"},
    }
    data.update(fields)
    return data


def invalid(data: Any) -> Invalid:
    result = validate_payload(data)
    assert isinstance(result, Invalid), f"expected Invalid, got {result!r}"
    return result


def digits_of(text: str) -> str:
    return re.sub(r"\D", "", text)


def luhn_complete(prefix: str) -> str:
    """Append the check digit that makes ``prefix`` Luhn-valid."""
    for check in "0123456789":
        if luhn_valid(prefix + check):
            return prefix + check
    raise AssertionError("unreachable")  # pragma: no cover


# ---- Luhn and detection ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        ("79927398713", True),
        ("79927398710", False),
        ("4111111111111111", True),
        ("4111111111111112", False),
        ("0", True),
        ("378282246310005", True),
    ],
)
def test_luhn_checksum(digits: str, valid: bool) -> None:
    """The Luhn check accepts exactly the numbers whose checksum is a multiple of ten."""
    assert luhn_valid(digits) is valid


@pytest.mark.parametrize("card", TEST_CARDS + PRINTED_FORMS)
def test_known_card_numbers_are_detected_and_redacted(card: str) -> None:
    """Real test PANs, bare or printed in groups, are found and masked inside free text."""
    text = f"pay with {card} please"
    assert contains_card_number(text)
    assert redact_card_numbers(text) == f"pay with {MASK} please"


@pytest.mark.parametrize(
    "text",
    [
        "4111111111111112",  # fails Luhn
        "411111111111",  # 12 digits: too short
        "41111111111111111111",  # 20 digits: too long
        "Order 1001",
        "0b7d6c1e-3c1f-4a52-9a4e-8f0f4c2a9d11",
        "ref 1234-123456789012",  # a UUID tail, not a printed card
    ],
)
def test_non_cards_are_not_flagged(text: str) -> None:
    """Numbers that are not Luhn-valid 13-19 digit card numbers pass untouched."""
    assert not contains_card_number(text)
    assert redact_card_numbers(text) == text


@given(
    prefix=st.text(alphabet="0123456789", min_size=12, max_size=18),
    before=st.sampled_from(["", "card ", "pm_", "x:", "("]),
    after=st.sampled_from(["", " thanks", ")", "/x"]),
)
def test_any_luhn_valid_number_in_text_is_found_and_masked(
    prefix: str, before: str, after: str
) -> None:
    """Every Luhn-valid 13-19 digit run standing apart from other digits is caught and masked."""
    card = luhn_complete(prefix)
    text = f"{before}{card}{after}"
    assert contains_card_number(text)
    assert card not in redact_card_numbers(text)


def test_ten_thousand_random_uuids_are_never_flagged() -> None:
    """Random uuid4 payment ids, also as metadata and description text, never look like PANs."""
    rng = random.Random(20240601)
    for _ in range(10_000):
        pid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        assert not contains_card_number(pid), pid
        assert not contains_card_number(pid.upper()), pid
        result = validate_payload(body(payment_id=pid, description=pid, metadata={"ref": pid}))
        assert isinstance(result, PaymentRequest), (pid, result)


def test_uuids_with_all_decimal_tails_are_not_flagged() -> None:
    """UUIDs whose groups are all digits (the worst case for a naive digit rule) pass."""
    for pid in (
        "12345678-1234-4234-8234-123456789012",
        "00000000-0000-4000-8000-000000000000",
        "41111111-1111-4111-9111-111111111111",
    ):
        assert not contains_card_number(pid)
        assert isinstance(validate_payload(body(payment_id=pid, description=pid)), PaymentRequest)


# ---- card numbers in a request -----------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"payment_method": PAN}, "payment_method"),
        ({"payment_method": "pm_4111 1111 1111 1111"}, "payment_method"),
        ({"description": f"my card is {PAN}"}, "description"),
        ({"description": "card 4111-1111-1111-1111"}, "description"),
        ({"metadata": {"note": f"card {PAN}"}}, "metadata"),
        ({"metadata": {PAN: "key is a card"}}, "metadata"),
        ({"metadata": {PAN: 5}}, "metadata"),
        ({PAN: "unknown field named like a card"}, "Extra inputs"),
        ({"customer_id": PAN}, "customer_id"),
        ({"merchant_id": PAN}, "merchant_id"),
    ],
)
def test_card_numbers_are_refused_without_echoing_the_digits(
    fields: dict[str, Any], where: str
) -> None:
    """A PAN anywhere a producer can write text makes the message invalid, and is never echoed."""
    result = invalid(body(**fields))
    assert result.error.code == "schema_violation"
    assert where in result.error.message
    assert "1111" not in result.error.message
    for text in (result.error.message, result.payment_id or "", result.merchant_id or ""):
        assert PAN not in digits_of(text)


def test_a_non_luhn_order_number_in_the_description_is_accepted() -> None:
    """Long numbers that are not card numbers (order references) do not refuse a payment."""
    result = validate_payload(body(description="Order 4111111111111112", metadata={"n": "123"}))
    assert isinstance(result, PaymentRequest)


# ---- decode_request: transport-level problems ---------------------------------------------


def test_a_valid_body_decodes_to_a_request() -> None:
    """A well-formed JSON request becomes a PaymentRequest with the canonical key."""
    data = body(payment_id="0B7D6C1E-3C1F-4A52-9A4E-8F0F4C2A9D11")
    result = decode_request(orjson.dumps(data), "application/json")
    assert isinstance(result, PaymentRequest)
    assert result.key == "0b7d6c1e-3c1f-4a52-9a4e-8f0f4c2a9d11"
    assert result.metadata == {"order_id": "1001"}


def test_content_type_parameters_are_accepted() -> None:
    """A charset parameter on the JSON content type does not refuse the message."""
    result = decode_request(orjson.dumps(body()), "application/json; charset=utf-8")
    assert isinstance(result, PaymentRequest)


def test_not_json_is_invalid() -> None:
    """A body that is not JSON is refused with code not_json."""
    result = decode_request(b"{not json", "application/json")
    assert isinstance(result, Invalid)
    assert result.error.code == "not_json"
    assert "not JSON" in result.error.message


def test_a_json_array_is_invalid() -> None:
    """A JSON body that is not an object is refused and says so."""
    result = decode_request(b"[1, 2]", "application/json")
    assert isinstance(result, Invalid)
    assert "JSON object" in result.error.message


def test_wrong_content_type_is_invalid() -> None:
    """A message that declares a non-JSON content type is refused naming the content type."""
    result = decode_request(orjson.dumps(body()), "text/plain")
    assert isinstance(result, Invalid)
    assert result.error.code == "wrong_content_type"
    assert "content_type" in result.error.message
    assert "text/plain" in result.error.message


def test_body_too_large_is_invalid_before_parsing() -> None:
    """A body over the size limit is refused with its size and the limit in the message."""
    big = b"{" + b" " * MAX_BODY_BYTES + b"}"
    result = decode_request(big, "application/json")
    assert isinstance(result, Invalid)
    assert result.error.code == "body_too_large"
    assert str(MAX_BODY_BYTES) in result.error.message


# ---- schema violations --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({"amount": "1999"}, "amount", "integer"),
        ({"amount": 19.99}, "amount", "integer"),
        ({"amount": 1999.0}, "amount", "integer"),
        ({"amount": True}, "amount", "integer"),
        ({"amount": 0}, "amount", "greater than 0"),
        ({"amount": -5}, "amount", "greater than 0"),
        ({"currency": "eur"}, "currency", "upper-case"),
        ({"currency": "EURO"}, "currency", "upper-case"),
        ({"metadata": {f"k{i}": "v" for i in range(21)}}, "metadata", "at most 20"),
        ({"metadata": {"k": 5}}, "metadata.k", "string"),
        ({"description": "x" * 501}, "description", "500"),
        ({"payment_id": "not-a-uuid"}, "payment_id", "UUID"),
        ({"payment_id": 12345}, "payment_id", "UUID"),
        ({"merchant_id": ""}, "merchant_id", "at least 1"),
        ({"surprise": "field"}, "surprise", "Extra inputs"),
    ],
)
def test_schema_violations_name_the_field(
    fields: dict[str, Any], field: str, fragment: str
) -> None:
    """Each schema violation is an Invalid whose message names the field and the rule."""
    result = invalid(body(**fields))
    assert result.error.code == "schema_violation"
    assert result.error.message.startswith(f"{field}:") or f"; {field}:" in result.error.message
    assert fragment in result.error.message


@pytest.mark.parametrize("missing", ["payment_id", "amount", "currency", "merchant_id"])
def test_missing_required_fields_are_named(missing: str) -> None:
    """A request without a required field is refused naming that field."""
    data = body()
    del data[missing]
    result = invalid(data)
    assert f"{missing}: Field required" in result.error.message


def test_boundary_sizes_are_accepted() -> None:
    """Exactly 20 metadata pairs and a 500-character description are within the limits."""
    result = validate_payload(
        body(metadata={f"k{i}": "v" for i in range(20)}, description="x" * 500)
    )
    assert isinstance(result, PaymentRequest)


def test_invalid_keeps_ids_for_the_dlq_when_present() -> None:
    """An invalid message still reports its payment and merchant ids so operators can find it."""
    data = body(amount="12")
    result = invalid(data)
    assert result.payment_id == data["payment_id"]
    assert result.merchant_id == "m_123"


def test_gateway_body_carries_exactly_the_contract_fields() -> None:
    """The gateway body holds the SPEC's fields only, with metadata forwarded unchanged."""
    request = validate_payload(body(metadata={"a": "1", "b": "x y"}))
    assert isinstance(request, PaymentRequest)
    assert request.gateway_body() == {
        "amount": 1999,
        "currency": "EUR",
        "payment_method": "pm_card_visa",
        "merchant_id": "m_123",
        "customer_id": "c_42",
        "description": "Order 1001",
        "metadata": {"a": "1", "b": "x y"},
    }
