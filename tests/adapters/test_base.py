"""What every adapter shares: cutting a long message where a reader would, and outside words in the
bot's own text that show as written."""

from __future__ import annotations

import pytest

from adapters.base import inert, literal, split_message, unescape
from adapters.slack import to_mrkdwn


@pytest.mark.parametrize(
    ("text", "limit", "pieces"),
    [
        ("short", 10, ["short"]),
        ("", 10, [""]),
        ("Para one here.\n\nPara two.", 20, ["Para one here.", "Para two."]),
        ("Line one\nline two\nline three", 18, ["Line one\nline two", "line three"]),
        ('He said "stop." Then left.', 16, ['He said "stop."', "Then left."]),
        ("no sentence end just words here", 12, ["no sentence", "end just", "words here"]),
        ("x" * 25, 10, ["x" * 10, "x" * 10, "x" * 5]),
    ],
)
def test_split_message(text: str, limit: int, pieces: list[str]) -> None:
    assert split_message(text, limit) == pieces
    assert all(len(piece) <= limit for piece in pieces)


def test_split_message_prefers_a_late_sentence_end_over_an_early_paragraph() -> None:
    text = "Hi.\n\nThis sentence ends late. Then more text follows on."
    assert split_message(text, 30)[0] == "Hi.\n\nThis sentence ends late."


def test_inert_text_links_and_mentions_nothing_but_keeps_the_bots_code_and_lines() -> None:
    error = ("ann.json: field 'age' must be a number, got '<@&42> [the checklist](https://evil.example/x)'.\n"
             "Fix it, or run `persona add [FILE]` again.")
    shown = inert(error)
    assert "<https://" not in to_mrkdwn(shown) and "&lt;@&amp;42&gt;" in to_mrkdwn(shown), "Slack: no link, no mention"
    assert "](https://" not in shown and "<@" not in shown.replace("\\<@", ""), "Discord: no masked link, no mention"
    assert unescape(shown).replace("[:]", ":") == error, "the words read as written"
    assert shown.endswith("`persona add [FILE]` again."), "a code span of the bot's is left as it is"
    assert shown.count("\n") == 1


@pytest.mark.parametrize("words", ["[a](https://e.example)", "a`b [c](d)", "`", "<@1> **x** _y_"])
def test_inert_leaves_words_already_made_literal_as_they_are(words: str) -> None:
    assert inert(literal(words)) == literal(words)
    assert inert(inert(words)) == inert(words)
