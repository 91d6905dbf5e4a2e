"""PII redaction: what must be caught, and the prices, dates and order ids that must survive."""

from __future__ import annotations

import pytest

from serving.feedback.pii import contains_pii, find_pii, iban_valid, luhn_valid, redact, redact_obj


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Contact me at john.doe+shop@example.co.uk please", "Contact me at [EMAIL] please"),
        ("mail: jane (at) example (dot) com", "mail: [EMAIL]"),
        ("MAIL ME: Zoe_99@Mail-Server.DE.", "MAIL ME: [EMAIL]."),
        ("联系我 wang.li@163.com 谢谢", "联系我 [EMAIL] 谢谢"),
    ],
)
def test_emails(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Card 4111 1111 1111 1111 exp 12/27", "Card [CARD] exp 12/27"),
        ("card 4111-1111-1111-1111.", "card [CARD]."),
        ("5500005555555559 is mine", "[CARD] is mine"),
        ("amex 3782 822463 10005", "amex [CARD]"),
        ("visa13 4222222222222", "visa13 [CARD]"),
        ("qty 2 4111 1111 1111 1111 and 3 items", "qty 2 [CARD] and 3 items"),
    ],
)
def test_cards_pass_luhn(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Call +44 20 7946 0958 tomorrow", "Call [PHONE] tomorrow"),
        ("+1 (555) 123-4567", "[PHONE]"),
        ("reach me at 555-123-4567 or 1-800-555-0199", "reach me at [PHONE] or [PHONE]"),
        ("my phone: 555 123 4567", "my phone: [PHONE]"),
        ("Tel. 030 12345678", "Tel. [PHONE]"),
        ("Telefon: 0301234567", "Telefon: [PHONE]"),
        ("+49 (0)30 1234567", "[PHONE]"),
        ("appelez le 06 12 34 56 78", "appelez le [PHONE]"),
        ("mon portable 06.12.34.56.78", "mon portable [PHONE]"),
        ("+33 6 12 34 56 78", "[PHONE]"),
        ("llamar al 612 345 678", "llamar al [PHONE]"),
        ("手机13800138000", "手机[PHONE]"),
        ("电话：138 0013 8000", "电话：[PHONE]"),
    ],
)
def test_phones(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("IBAN DE89 3704 0044 0532 0130 00 BIC COBADEFFXXX", "IBAN [IBAN] BIC COBADEFFXXX"),
        ("iban de89370400440532013000", "iban [IBAN]"),
        ("GB82 WEST 1234 5698 7654 32", "[IBAN]"),
    ],
)
def test_ibans(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I live at 221B Baker Street, London", "I live at [ADDRESS], London"),
        ("ship to 1600 Pennsylvania Avenue NW please", "ship to [ADDRESS] please"),
        ("123 main st, springfield", "[ADDRESS], springfield"),
        ("42 5th Ave, Apt 3B", "[ADDRESS]"),
        ("Hauptstraße 12, 10115 Berlin", "[ADDRESS], 10115 Berlin"),
        ("Berliner Str. 5a", "[ADDRESS]"),
        ("12 rue de la Paix, Paris", "[ADDRESS], Paris"),
        ("5, avenue des Champs-Élysées", "[ADDRESS]"),
        ("Calle Mayor 5, Madrid", "[ADDRESS], Madrid"),
        ("calle de Alcalá, 23", "[ADDRESS]"),
    ],
)
def test_addresses(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Order KM-48213 was shipped",
        "order number 1234567890123456",  # 16 digits, fails Luhn
        "random 1234567812345678 number",
        "Order #123-456-7890 status",
        "ticket 555-123-4567",
        "Delivered on 01.05.2024 10:30 to you",
        "Date 2024-05-01 at 14:00, next 5/1/2024",
        "Call me on 01.05.2024",
        "It costs $1,299.99 or 1.299,99 € or EUR 1 234 567",
        "The bundle is 129.99 EUR, 3 for 299 dollars",
        "We sold 1,234,567 units, 3.5 kg, 12 x 500 g",
        "version 0.10.2, build 20240501",
        "ISBN 978-3-16-148410-0",
        "Tracking 1Z999AA10123456784",
        "0000 0000 0000 0000",  # passes Luhn, but a placeholder, not a card
        "I have 3 kids on our street",
        "I bought 2 tickets for the street festival",
        "Meet me at 5 on Main Street",
        "Room 101, floor 3, 2 x 25 items",
        "请在 2024年5月1日 前退货，订单号 20240501123",
        "Le colis de 2 kg arrive le 12/05/2024 à 14:30",
        "El pedido 4821 cuesta 49,90 €",
        "",
    ],
)
def test_false_positives_are_left_alone(text: str) -> None:
    assert redact(text) == text
    assert not contains_pii(text)


def test_mixed_text_and_idempotence() -> None:
    text = "I'm Ann, ann@x.org, card 4111 1111 1111 1111, call +1 (555) 123-4567, order KM-48213 for $19.99."
    once = redact(text)
    assert once == "I'm Ann, [EMAIL], card [CARD], call [PHONE], order KM-48213 for $19.99."
    assert redact(once) == once
    assert [s.kind for s in find_pii(text)] == ["email", "card", "phone"]


def test_validators() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112") and not luhn_valid("41x1")
    assert iban_valid("DE89 3704 0044 0532 0130 00") and not iban_valid("DE88 3704 0044 0532 0130 00")


def test_redact_obj_walks_json() -> None:
    value = {"turns": [{"role": "user", "content": "a@b.com"}], "n": 3, "ok": None}
    assert redact_obj(value) == {"turns": [{"role": "user", "content": "[EMAIL]"}], "n": 3, "ok": None}


def test_non_string_is_an_error() -> None:
    with pytest.raises(TypeError):
        redact(123)  # type: ignore[arg-type]
