"""Personal data at the edges of each rule: the shortest and longest numbers that count, what each
found id is called, the look-alikes left alone, and what the check reports."""

from __future__ import annotations

import pytest

from bots.verification.base import VerdictAction, VerificationContext
from bots.verification.checks.pii import PiiCheck, find_pii
from config.verification import TEAM_DEFAULT

CTX = VerificationContext()


def found(text: str) -> list[tuple[str, str, str]]:
    return [(text[f.start : f.end], f.kind, f.detail) for f in find_pii(text)]


@pytest.mark.parametrize(
    ("text", "value", "detail"),
    [
        ("SSN 536-22-8145", "536-22-8145", "US SSN"),
        ("my ssn is 536228145", "536228145", "US SSN"),
        ("NINO AB 12 34 56 C", "AB 12 34 56 C", "UK NINO"),
        ("DNI 12345678Z", "12345678Z", "Spanish DNI/NIE"),
        ("NIE X1234567L", "X1234567L", "Spanish DNI/NIE"),
        ("CF RSSMRA85T10A562S", "RSSMRA85T10A562S", "Italian codice fiscale"),
        ("NIR 2 95 10 99 126 111 93", "2 95 10 99 126 111 93", "French NIR"),
        ("aadhaar 2341 2341 2346", "2341 2341 2346", "Aadhaar"),
        ("PAN ABCPE1234F", "ABCPE1234F", "Indian PAN"),
    ],
)
def test_each_id_found_says_which_id_it_is(text, value, detail):
    assert found(text) == [(value, "id", detail)]


@pytest.mark.parametrize(
    ("text", "card"),
    [
        ("card 4222222222222 ok", "4222222222222"),  # 13 digits, the shortest
        ("card 4111111111111111110 ok", "4111111111111111110"),  # 19 digits, the longest
    ],
)
def test_the_shortest_and_longest_card_numbers_count(text, card):
    assert found(text) == [(card, "card", "")]


def test_a_number_of_one_repeated_digit_is_no_card_even_when_its_checksum_fits():
    assert found("ticket 8888 8888 8888 8888 is the test fixture") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("passport A12345", [("A12345", "passport", "")]),  # six characters, five digits
        ("passport AB12345", [("AB12345", "passport", "")]),
        ("passport AB1234567", [("AB1234567", "passport", "")]),  # nine characters
        ("passport ABCD123456", []),  # ten: an order number
        ("passport AB1234C", []),  # four digits
        ("passport X123456789", []),
    ],
)
def test_passport_numbers_have_six_to_nine_characters_with_five_digits(text, expected):
    assert found(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "it was 415 555 2671 dollars",
        "revenue 415 555 2671 USD",
        "raised 415-555-2671 euros",
        "costs $ 415-555-2671",
        "EUR 020 7946 0958",
        "020 7946 0958 users",
        "$020 7946 0958",
        "ip 192.168.100.200",
        # dotted numbers a phone library would take: versions (a one-digit part) and four-part addresses
        "version 1.41555.52671",
        "build 030.1.234567",
        "ip 89.123.456.78",
        "ip 415.555.26.71",
        "ip 0.30.1234.5678",
        "version 1.2.3.4567",
        "build 4.15.555.2671",
        "10.123.456.7890",
        "released 2024.10.15",
        "the 2019-2024 plan",
        "seasons 1999/2000",
        "order 4155552671 shipped",
        "visits 1 234 567 890 so far",
    ],
)
def test_amounts_versions_addresses_and_dates_are_not_phone_numbers(text):
    assert found(text) == []


@pytest.mark.parametrize(
    ("text", "phone"),
    [
        ("call 0301 234", "0301 234"),  # seven digits, the fewest
        ("call 030 12345", "030 12345"),
        ("call 415.555.2671", "415.555.2671"),
        ("tel: (415) 555-2671 after 5", "(415) 555-2671"),
        ("ring me  (415) 555-2671", "(415) 555-2671"),
        ("0044 20 7946 0958", "0044 20 7946 0958"),
        ("001 415 555 2671", "001 415 555 2671"),
        ("in 2019-2024 call (415) 555-2671", "(415) 555-2671"),
    ],
)
def test_short_and_dotted_phone_numbers_count(text, phone):
    assert found(text) == [(phone, "phone", "")]


@pytest.mark.parametrize(
    "text",
    [
        "jane {at} example {dot} com",
        "jane <at> example <dot> com",
        "jane [AT] example [DOT] com",
        "jane (At) example (Dot) io",
    ],
)
def test_addresses_spelled_out_with_any_brackets_are_found(text):
    assert [kind for _, kind, _ in found(text)] == ["email"]


@pytest.mark.parametrize(
    ("text", "iban"),
    [
        # The pattern runs on into capitalised words; the IBAN is the longest valid cut.
        ("pay NO9386011117947 OK THANKS", "NO9386011117947"),
        ("send FR14 2004 1010 0505 0001 3M02 606 I think", "FR14 2004 1010 0505 0001 3M02 606"),
    ],
)
def test_an_iban_followed_by_capitals_is_cut_where_it_ends(text, iban):
    assert found(text) == [(iban, "iban", "")]


def test_every_iban_in_a_message_is_found():
    text = "old FR14 2004 1010 0505 0001 3M02 606 OK, new GB82WEST12345698765432"
    assert [value for value, _, _ in found(text)] == ["FR14 2004 1010 0505 0001 3M02 606", "GB82WEST12345698765432"]


async def test_a_redaction_reports_each_kind_once_and_is_certain():
    check = PiiCheck(TEAM_DEFAULT)
    result = await check.run("Reach jane@example.com or bob@example.com, or (415) 555-2671.", CTX)
    assert result.action is VerdictAction.REWRITE and result.score == 1.0
    assert result.reason == "personal data removed: email address, phone number"
    assert result.text == "Reach [email removed] or [email removed], or [phone number removed]."


async def test_a_block_reports_each_kind_once_and_is_certain():
    check = PiiCheck(TEAM_DEFAULT.model_copy(update={"pii_action": "block"}))
    result = await check.run("Card 4111 1111 1111 1111, mail jane@example.com", CTX)
    assert result.action is VerdictAction.BLOCK and result.score == 1.0 and result.text is None
    assert result.reason == "personal data: card number, email address"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Fifteen digits is the longest a number can be; "00" is the "+" dialled, not part of it.
        ("call +43 664 1234567890", [("+43 664 1234567890", "phone", "")]),
        ("call 0043 664 1234567890", [("0043 664 1234567890", "phone", "")]),
        ("ref 0049 30 123456789012", []),
    ],
)
def test_a_phone_number_has_at_most_fifteen_digits_after_its_plus(text, expected):
    assert found(text) == expected


def test_a_card_grouped_by_dots_is_a_card_and_thousands_grouped_by_dots_are_not():
    assert found("card 4111.1111.1111.1111 ok") == [("4111.1111.1111.1111", "card", "")]
    # 4111111111111111 passes Luhn, but grouped in threes it is an amount.
    assert found("Rows scanned: 4.111.111.111.111.111 in total") == []
    assert found("total 4.111.111.111.111.111, card 4012 8888 8888 1881") == [("4012 8888 8888 1881", "card", "")]


@pytest.mark.parametrize(
    "text",
    ["mail jane.doe@\nexample.com please", "mail jane.doe\n@example.com please", "mail jane.doe@example.\ncom please"],
)
async def test_an_email_address_broken_over_two_lines_is_one_address(text):
    result = await PiiCheck(TEAM_DEFAULT).run(text, CTX)
    assert (result.text, result.reason) == ("mail [email removed] please", "personal data removed: email address")


def test_a_line_starting_with_a_mention_is_no_address_with_the_line_before():
    assert found("thanks bob\n@alice.smith can you check") == []


async def test_the_channels_countries_decide_also_for_numbers_in_fullwidth_digits():
    check = PiiCheck(TEAM_DEFAULT)
    text = "Meu celular é (１１) ９８７６５-４３２１"
    assert (await check.run(text, VerificationContext(phone_regions=["br"]))).text == "Meu celular é [phone number removed]"
    assert (await check.run(text, VerificationContext(phone_regions=["us"]))).action is VerdictAction.PASS
