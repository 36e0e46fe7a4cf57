"""Personal data: found, validated, redacted (or blocked); numbers that are not personal left alone."""

from __future__ import annotations

import time

import pytest

from bots.verification.base import VerificationContext
from bots.verification.checks.pii import PiiCheck, find_pii
from config.verification import TEAM_DEFAULT

CTX = VerificationContext()
CHECK = PiiCheck(TEAM_DEFAULT)


async def redacted(text: str) -> str | None:
    result = await CHECK.run(text, CTX)
    return result.text if result.action.value == "rewrite" else None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # e-mail
        ("mail me at jane.doe@example.com please", "mail me at [email removed] please"),
        ("Jane.Doe+billing@sub.example.co.uk", "[email removed]"),
        ("jane.doe [at] example [dot] com", "[email removed]"),
        ("jane (at) corp (dot) io", "[email removed]"),
        ("write to jane at example dot com", "write to [email removed]"),
        ("jane.doe@exa\u200bmple.com", "[email removed]"),
        ("jane.d\u200boe@example.com", "[email removed]"),
        ("jane.doe＠example.com", "[email removed]"),
        # phone numbers
        ("call me on (415) 555-2671", "call me on [phone number removed]"),
        ("my number is +44 20 7946 0958", "my number is [phone number removed]"),
        ("ring 020 7946 0958 after lunch", "ring [phone number removed] after lunch"),
        ("+1 415 555 2671", "[phone number removed]"),
        ("415.555.2671", "[phone number removed]"),
        ("office: 030 1234567", "office: [phone number removed]"),
        ("06 12 34 56 78", "[phone number removed]"),
        ("0049 30 901820", "[phone number removed]"),
        ("tel 4155552671", "tel [phone number removed]"),
        ("call +４４ ２０ ７９４６ ０９５８", "call [phone number removed]"),
        # cards
        ("card 4111 1111 1111 1111 exp 12/27", "card [card number removed] exp 12/27"),
        ("card 4012888888881881", "card [card number removed]"),
        ("amex 3782-822463-10005", "amex [card number removed]"),
        ("mc 5555 5555 5555 4444", "mc [card number removed]"),
        # IBANs
        ("IBAN DE89 3704 0044 0532 0130 00 thanks", "IBAN [IBAN removed] thanks"),
        ("GB82WEST12345698765432", "[IBAN removed]"),
        ("send to FR14 2004 1010 0505 0001 3M02 606 OK", "send to [IBAN removed] OK"),
        # government ids
        ("SSN 536-22-8145", "SSN [ID number removed]"),
        ("my ssn is 536228145", "my ssn is [ID number removed]"),
        ("NINO AB 12 34 56 C", "NINO [ID number removed]"),
        ("DNI 12345678Z", "DNI [ID number removed]"),
        ("NIE X1234567L", "NIE [ID number removed]"),
        ("CF RSSMRA85T10A562S", "CF [ID number removed]"),
        ("aadhaar 2341 2341 2346", "aadhaar [ID number removed]"),
        ("PAN ABCPE1234F", "PAN [ID number removed]"),
        ("NHS number 943 476 5919", "NHS number [ID number removed]"),
        ("BSN 111222333", "BSN [ID number removed]"),
        # addresses
        ("I live at 221B Baker Street, London", "I live at [address removed], London"),
        ("office at 1600 Pennsylvania Ave NW", "office at [address removed] NW"),
        ("350 5th Avenue, Suite 200 is the venue", "[address removed] is the venue"),
        ("come by 42 Elm Rd. tonight", "come by [address removed] tonight"),
        ("Hauptstraße 12, Berlin", "[address removed], Berlin"),
        ("12 rue de la Paix", "[address removed]"),
        ("Via Roma 12, Milano", "[address removed], Milano"),
    ],
)
async def test_personal_data_is_redacted(text: str, expected: str) -> None:
    assert await redacted(text) == expected


async def test_several_kinds_in_one_message() -> None:
    result = await CHECK.run("Reach me at jane@example.com or (415) 555-2671, card 4111 1111 1111 1111.", CTX)
    assert result.action.value == "rewrite"
    assert result.text == "Reach me at [email removed] or [phone number removed], card [card number removed]."
    assert result.reason == "personal data removed: email address, phone number, card number"


async def test_block_policy_blocks_instead() -> None:
    check = PiiCheck(TEAM_DEFAULT.merged({"pii_action": "block"}))
    result = await check.run("my email is jane@example.com", CTX)
    assert result.action.value == "block"
    assert result.text is None
    assert result.reason == "personal data: email address"


ORDINARY = [
    "We shipped v2.3.1 on 2024-05-06 at 10:30.",
    "Revenue was $1,250,000 in 2023, up 12%.",
    "Between 2019-2024 we grew 3x.",
    "Ticket 12345678 is blocked on review.",
    "The invoice total is 1 234 567 EUR.",
    "Meet at 3pm in room 4.12.",
    "The staging box is 192.168.100.200.",
    "Order #4155552671 shipped yesterday.",
    "ISBN 978-3-16-148410-0 is the book.",
    "We need 3 Big Features done by Friday.",
    "Monitoring 24/7 is on, Spring 2024 release is planned.",
    "Let's talk at lunch, I'm at the office.",
    "Pi is 3.14159265 and e is 2.71828.",
    "I spent €12 345 on licences.",
    "The build took 1234567 ms.",
    "We want to reach 10.000.000 users.",
    "Contact us via Slack 24 hours a day.",
    "Our NPS went from 32 to 41 in Q3.",
    "Call at 9:30, dial-in on the invite.",
    "See section 4.2.1 of the spec.",
    "The timestamp is 1699999999.",
    "3 people joined and we closed 12 tickets in 2 weeks.",
    "Issue #12345 and PR #6789012 are linked.",
    "2024-01-01T10:00:00Z is when the job ran.",
    "We hit 99.95% uptime, ARR of 4 500 000.",
    "The batch id is 20240506-1130-0001.",
    "Dates: 12/25/2024, 25.12.2024 and 06.05.2024.",
    "Email the team, we are at example.com now.",
    "Version 10.0.19045.3693 of Windows.",
    "The SKU is ABC-12345-XYZ.",
    "Commit 4f9c2d1 fixed it; hash a94a8fe5ccb19ba61c4c0873d391e987982fbbd3.",
    "UUID 123e4567-e89b-12d3-a456-426614174000 is the tenant.",
    "Priya owns the roadmap and Tomasz owns the API.",
    "",
]


@pytest.mark.parametrize("text", ORDINARY)
async def test_ordinary_numbers_pass(text: str) -> None:
    assert find_pii(text) == []
    assert (await CHECK.run(text, CTX)).action.value == "pass"


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112",  # fails Luhn
        "SSN 000-12-3456",  # never issued
        "SSN 666-12-3456",
        "SSN 900-12-3456",
        "IBAN DE89 3704 0044 0532 0130 01",  # bad checksum
        "call 555-0100",  # too short
        "NINO QQ 12 34 56 C",  # QQ is the documentation example, never issued
        "DNI 12345678A",  # wrong check letter
    ],
)
async def test_invalid_numbers_are_not_personal_data(text: str) -> None:
    assert find_pii(text) == []


async def test_the_check_is_fast() -> None:
    texts = ORDINARY + ["Reach me at jane@example.com or (415) 555-2671."]
    started = time.perf_counter()
    rounds = 50
    for _ in range(rounds):
        for text in texts:
            await CHECK.run(text, CTX)
    assert (time.perf_counter() - started) / (rounds * len(texts)) < 0.003


async def test_passports_local_phone_numbers_and_addresses_elsewhere_are_redacted() -> None:
    cases = [
        # passport numbers, next to the word for passport
        ("The CFO's passport number is X4829173 and DOB 14/03/1979.",
         "The CFO's passport number is [passport number removed] and DOB 14/03/1979."),
        ("passport no. 123456789, expires 2031", "passport no. [passport number removed], expires 2031"),
        ("Mi número de pasaporte es AAB123456.", "Mi número de pasaporte es [passport number removed]."),
        ("Reisepass-Nr. C01X00T47", "Reisepass-Nr. [passport number removed]"),
        ("Numéro de passeport : 12AB34567", "Numéro de passeport : [passport number removed]"),
        ("Numer paszportu: AB1234567", "Numer paszportu: [passport number removed]"),
        # phone numbers without a country code, written as their country writes them
        ("Meu celular é (11) 98765-4321, me chama no WhatsApp.",
         "Meu celular é [phone number removed], me chama no WhatsApp."),
        ("Llámame al 612 34 56 78.", "Llámame al [phone number removed]."),
        ("Zadzwoń: 512 345 678", "Zadzwoń: [phone number removed]"),
        ("Il mio cellulare è 347 123 4567", "Il mio cellulare è [phone number removed]"),
        # street addresses in more countries
        ("Mój adres: ul. Marszałkowska 84/92 m. 15, 00-514 Warszawa", "Mój adres: [address removed]"),
        ("Envíalo a C/ Mayor 5, 2º izq.", "Envíalo a [address removed], 2º izq."),
        ("Vivo en Paseo de la Castellana 100, Madrid.", "Vivo en [address removed], Madrid."),
        ("Moro na Avenida da Liberdade, 245, Lisboa.", "Moro na [address removed], Lisboa."),
        ("Manda para Av. Paulista, 1000, apto 12", "Manda para [address removed], apto 12"),
        ("Abito in Viale Monza 12, Milano", "Abito in [address removed], Milano"),
        ("Vesterbrogade 12, 1620 København", "[address removed], 1620 København"),
        ("Lakásom: Váci utca 12, Budapest", "Lakásom: [address removed], Budapest"),
        ("Adresim İstiklal Caddesi No: 45, Beyoğlu", "Adresim [address removed], Beyoğlu"),
    ]
    for text, expected in cases:
        assert await redacted(text) == expected, text
    for text in (
        "Passport renewal takes 6 weeks.",
        "My passport expires in 2027.",
        "Passport.js 0.7.0 is fine",
        "Bring your passport to gate B12 at 14:30",
        "order 100-4471-22 shipped, ticket 4471-2231",
        "build 2024 0871 and ids 123 456 789 are in the sheet",
        "SSN 666-12-3456",
        "Calle 13 is my favourite band.",
        "The Plaza Hotel has 5 stars.",
        "ul. is short for ulica in Polish",
        "Via 3 routes we reach it.",
    ):
        assert find_pii(text) == [], text


async def test_the_channel_decides_which_countries_numbers_count_without_a_country_code() -> None:
    brazil_only = VerificationContext(phone_regions=["br"])
    assert (await CHECK.run("Llámame al 612 34 56 78.", brazil_only)).action.value == "pass"
    assert (await CHECK.run("Meu celular é (11) 98765-4321", brazil_only)).text == "Meu celular é [phone number removed]"
    assert VerificationContext(phone_regions="es, pt").phone_regions == ["ES", "PT"]
    from bots.verification import verify_text

    assert (await verify_text("Llámame al 612 34 56 78.", phone_regions=["BR"])).decision == "pass"
    assert (await verify_text("Llámame al 612 34 56 78.")).decision == "rewrite"
    with pytest.raises(ValueError):
        VerificationContext(phone_regions=["Spain"])
