"""``caseless``: the lower case the checks look for words in before running a case-insensitive
pattern. It must find a word wherever Python's ``re.IGNORECASE`` could match it, or a check would
skip a pattern that matches."""

from __future__ import annotations

import re

from bots.verification.checks import pii, secrets
from bots.verification.text import caseless

#: Every word a check looks for in ``caseless`` text before a case-insensitive pattern.
WORDS = (*secrets.KEYWORD_STEMS, pii._PASSPORT_WORD, *(words for _, words in pii._ADDRESS_WORDS.values() for words in words))


def test_every_letter_python_matches_case_insensitively_becomes_the_letter_it_matches():
    """A letter matches, case-insensitively, letters ``str.lower`` leaves alone (the long S,
    dotless I) or turns into two (dotted capital I); each becomes the letter it matches."""
    letters = sorted(set("".join(WORDS)) - set(" ./"))
    any_letter = re.compile("[" + "".join(letters) + "]", re.IGNORECASE)
    wrong = []
    for code in range(0x110000):
        char = chr(code)
        if any_letter.fullmatch(char):
            matched = {letter for letter in letters if re.fullmatch(letter, char, re.IGNORECASE)}
            if caseless(char) not in matched:
                wrong.append((hex(code), caseless(char), matched))
    assert wrong == []
    assert {"s", "i", "k", "é", "ł"} <= set(letters)


def test_a_word_is_found_in_capitals_and_in_the_letters_lower_case_leaves_alone():
    assert caseless("PASSWORD") == "password"
    assert caseless("pa\u017f\u017fword") == "password"
    assert caseless("API_\u212aEY") == "api_key"
    assert caseless("AP\u0130") == "api"
    assert caseless("credent\u0131al") == "credential"
    assert caseless("ALLÉE HASŁO") == "allée hasło"
