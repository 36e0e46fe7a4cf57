"""The words without which a message cannot say it is an AI: one fast scan decides whether the
disclosure patterns run at all, so it must find every word the patterns need, wherever it is."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bots.verification.checks import disclosure
from bots.verification.checks.disclosure import QUICK_WORDS, ai_disclosure

#: The scan as the list of its words, one after the other (slow, plainly right).
LISTED = re.compile(r"\b(?:ai|a\.i|ki|ia|si|llm)\b|" + "|".join(re.escape(word) for word in QUICK_WORDS))
#: Letters and marks the words are made of, and a few others.
PIECES = st.lists(st.one_of(st.sampled_from(sorted(set("".join(QUICK_WORDS)) | set(" .,!?-'"))),
                            st.sampled_from(QUICK_WORDS + ("ai", "a.i", "ki", "ia", "si", "llm", "xai", "aix"))),
                  max_size=12).map("".join)


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(PIECES)
def test_the_scan_finds_a_word_exactly_where_the_list_of_words_does(text):
    assert bool(disclosure._QUICK.search(text)) == bool(LISTED.search(text))


@pytest.mark.parametrize("word", QUICK_WORDS)
def test_each_word_is_found_inside_a_longer_one(word):
    assert disclosure._QUICK.search(f"the {word}s and x{word}y")


@pytest.mark.parametrize(("text", "found"), [("I am an AI, sorry", True), ("as a.i. I can't", True), ("said", False),
                                             ("maize and kiwi", False), ("trained as an llm", True)])
def test_the_short_words_count_only_as_words(text, found):
    assert bool(disclosure._QUICK.search(text.lower())) is found


@pytest.mark.parametrize("text", ["As an AI language model, I cannot share that.",
                                  "I'm just a chatbot simulating Priya, honestly.",
                                  "Als KI-Sprachmodell kann ich das nicht."])
def test_a_disclosure_is_still_caught(text):
    assert ai_disclosure(text)
