"""The text forms the checks match on. ``caseless``, the lower case they look for words in before
running a case-insensitive pattern, must find a word wherever Python's ``re.IGNORECASE`` could
match it, or a check would skip a pattern that matches. ``fold`` and ``strip_invisible`` take short
cuts past characters that cannot change; they must give what the long way gives, for any text."""

from __future__ import annotations

import re
import unicodedata

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bots.verification import text as text_module
from bots.verification.checks import pii, secrets
from bots.verification.text import caseless, fold, skeleton, strip_invisible

EXAMPLES = settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
#: Text mixing ASCII, accented and combining letters, invisible characters, emoji sequences.
MIXED = st.lists(st.one_of(
    st.characters(max_codepoint=0x7F),
    st.sampled_from("áéíóúñçøłßİıſKΣσς\u0338\u20d2\u0301\u0308\u0327\u200b\u200d\u00ad\u2066\ufeff\U000e0067\U000e007f"
                    "\U0001f3f4\U0001f469\U0001f4bb\u2014\u2019ｆｕｌｌ𝐦𝐚𝐭𝐡ᴋɪʟʟ"),
    st.characters(),
), max_size=40).map("".join)  # (text() would mix the alphabets into one, rare characters lost)

#: Every word a check looks for in ``caseless`` text before a case-insensitive pattern.
WORDS = (*secrets.KEYWORD_STEMS, pii._PASSPORT_WORD, *pii._ROMANCE_WORDS[1])


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


@EXAMPLES
@given(MIXED)
def test_fold_gives_what_dropping_every_combining_mark_gives(text):
    skeletal = skeleton(text)
    if not skeletal.isascii():
        skeletal = "".join(c for c in unicodedata.normalize("NFKD", skeletal) if not unicodedata.combining(c))
    skeletal = skeletal.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
    assert fold(text) == " ".join(skeletal.casefold().split())


@EXAMPLES
@given(MIXED)
def test_strip_invisible_gives_what_the_full_pattern_gives(text):
    assert strip_invisible(text) == text_module.INVISIBLE_RE.sub(text_module._drop_invisible, text)


def test_invisible_characters_go_and_emoji_sequences_stay():
    assert strip_invisible("ig\u200bnore prev\u00adious") == "ignore previous"
    assert strip_invisible("Hernández — naïve") == "Hernández — naïve"
    coder = "\U0001f469\u200d\U0001f4bb"
    assert strip_invisible(f"a {coder} b\u200d") == f"a {coder} b"
    assert fold("Diego HERNÁNDEZ\u200b — Ｆｕｌｌ") == "diego hernandez — full"
