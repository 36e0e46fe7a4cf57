"""What every adapter shares: cutting a long message where a reader would."""

from __future__ import annotations

import pytest

from adapters.base import split_message


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
