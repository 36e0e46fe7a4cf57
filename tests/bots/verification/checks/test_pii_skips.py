"""The personal-data check skips the patterns a message cannot match: an id format with more digits
than the message has, passport numbers without a word for passport, address patterns without one
of their street words. A skip must never hide personal data: every string each
skipped pattern matches (generated from the pattern itself) passes its skip test, and each kind is
still found at the fewest digits it can have."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bots.verification.checks import pii
from bots.verification.checks.pii import find_pii
from bots.verification.text import caseless

EXAMPLES = settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
DIGIT = re.compile(r"\d")

ID_PATTERNS = [
    *((pattern, fewest) for pattern, _, _, fewest in pii._SHAPED_IDS),
    *((pattern, fewest) for pattern, _, fewest in pii._KEYWORD_IDS),
    (pii._SSN, pii._SSN_DIGITS),
    (pii._SSN_KEYWORD, pii._SSN_DIGITS),
]


@pytest.mark.parametrize(("pattern", "fewest"), ID_PATTERNS, ids=[p.pattern[:30] for p, _ in ID_PATTERNS])
def test_every_id_a_pattern_matches_has_at_least_its_fewest_digits(pattern, fewest):
    @EXAMPLES
    @given(st.from_regex(pattern, fullmatch=True))
    def matches(text: str) -> None:
        assert len(DIGIT.findall(text)) >= fewest, text

    matches()


@pytest.mark.parametrize(
    ("text", "name", "fewest"),
    [
        ("SSN 536-22-8145", "US SSN", pii._SSN_DIGITS),
        ("my ssn is 536228145", "US SSN", pii._SSN_DIGITS),
        ("NINO AB 12 34 56 C", "UK NINO", 6),
        ("NIE X1234567L", "Spanish DNI/NIE", 7),
        ("CF RSSMRA85T10A562S", "Italian codice fiscale", 7),
        ("NIR 1 85 05 2A 123 456 33", "French NIR", 14),  # Corsica: a digit fewer
        ("aadhaar 2341 2341 2346", "Aadhaar", 12),
        ("PAN ABCPE1234F", "Indian PAN", 4),
        ("NHS number 943 476 5919", "", 10),
        ("Steuer-ID 36574261809", "", 11),
        ("BSN 111222333", "", 9),
    ],
)
def test_an_id_with_the_fewest_digits_its_kind_has_is_found(text, name, fewest):
    assert len(DIGIT.findall(text)) == fewest  # the message has no digit to spare
    assert [(f.kind, f.detail) for f in find_pii(text)] == [("id", name)]


def test_every_passport_match_has_the_word_it_is_looked_for_by():
    @EXAMPLES
    @given(st.from_regex(pii._PASSPORT, fullmatch=True))
    def matches(text: str) -> None:
        assert pii._PASSPORT_WORD in caseless(text), text

    matches()


@pytest.mark.parametrize("text", ["PASSPORT 123456789", "pa\u017f\u017fport no. X4829173"])
def test_a_passport_number_after_the_word_in_any_case_is_found(text):
    assert [f.kind for f in find_pii(text)] == ["passport"]


@pytest.mark.parametrize(("pattern", "written", "any_case"), pii._ADDRESSES,
                         ids=["english", "german-nordic", "romance", "polish", "hungarian-turkish"])
def test_every_address_a_pattern_matches_has_one_of_its_words(pattern, written, any_case):
    assert written and "" not in written, "each address pattern has words of its own to look for"

    @EXAMPLES
    @given(st.from_regex(pattern, fullmatch=True))
    def matches(text: str) -> None:
        assert pii._may_match(text, caseless(text), written, any_case), text

    matches()


@pytest.mark.parametrize(
    "text",
    [
        "12 RUE de la Paix", "4 ALLÉE Verte", "12 Impasse Colbert", "3 quai des Brumes", "7 bd Voltaire",
        "12 \u0130MPASSE Colbert", "3 qua\u0131 des Brumes", "5 Impa\u017f\u017fe Colbert",  # letters lower() keeps
        "Avenida Rivadavia 1234", "Calle Mayor 5", "C/ Mayor 5", "Pza. Mayor 3", "Rua Augusta 100",
        "Travesía Alta 3", "Carretera Vieja 7", "Piazzale Loreto 2", "V.le Monza 12", "Praça Tiradentes 9",
        "Andrássy út 60", "Váci utca 12", "Bağdat Cad. No: 10", "Atatürk Bulvarı No: 5", "Kızılay Sokak No: 3",
    ],
)
def test_an_address_each_street_word_starts_is_still_found(text):
    message = f"see you at {text} tonight"
    assert [(f.kind, message[f.start:f.end]) for f in find_pii(message)] == [("address", text)]


def test_a_message_without_a_street_word_skips_the_address_patterns():
    text = "We ship the onboarding change in round 5, after 12 QA passes."
    assert not any(pii._may_match(text, caseless(text), written, any_case) for _, written, any_case in pii._ADDRESSES)
    busy = "Meet me on Baker Street, the Hauptstraße, Rue Cler, ul. Nowa or Váci utca."
    assert all(pii._may_match(busy, caseless(busy), written, any_case) for _, written, any_case in pii._ADDRESSES)
