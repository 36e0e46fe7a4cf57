"""Persona names nobody can take for the bot, the platform or its staff, and that show as plain words.

A persona's name is shown as a poster's name and inside the bot's own messages. A persona called
"Troupe", "Discord", "Slackbot" or "Moderator" (or "Trουpe" with Greek letters, "M0derator",
"S l a c k") could pass its words off as the bot's, the platform's or a moderator's; a name holding
markup, links or invisible characters would act on the messages it is shown in. Such names are
refused when a persona joins, with the reason and what to do instead.

Look-alikes are found on a *skeleton* of the name: compatibility forms folded (fullwidth,
mathematical letters), invisible characters and accents dropped, letters that look like Latin ones
mapped to them through Unicode's confusables data (``confusable_homoglyphs``), case folded, and the
usual digit-for-letter stand-ins read as letters.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

from confusable_homoglyphs import confusables

from adapters.base import literal

#: Names of the platforms, their system accounts and the people who run a channel: no persona may
#: carry one as a word of its name.
RESERVED_WORDS = (
    "troupe", "discord", "clyde", "slack", "slackbot", "system", "moderator", "mod", "admin", "administrator",
)

#: Characters a name never needs that chat platforms read as markup (emphasis, code, spoilers, links,
#: quotes, mentions, headings), so that a name shows as the words it is wherever it goes.
MARKUP_CHARACTERS = "*_~`|[]<>#\\"

#: Digits and signs that stand in for letters; every look-alike of "l" (``1``, ``I``, ``|``) is read as "l".
_STAND_INS = str.maketrans({"0": "o", "1": "l", "i": "l", "|": "l", "!": "l", "5": "s", "$": "s", "@": "a",
                            "3": "e", "4": "a", "7": "t"})
_LOOK_ALIKE_PAIRS = (("rn", "m"), ("vv", "w"))


@lru_cache(maxsize=4096)
def _latin(char: str) -> str:
    """The Latin letter ``char`` looks like (itself when it looks like none)."""
    if char.isascii():
        return char
    found = confusables.is_confusable(char, greedy=True) or []
    glyphs = [glyph["c"] for entry in found for glyph in entry["homoglyphs"]]
    ascii_glyphs = [g for g in glyphs if len(g) == 1 and g.isascii() and g.isalnum()]
    letters = [g for g in ascii_glyphs if g.isalpha()]
    return (letters or ascii_glyphs or [char])[0].casefold()


@lru_cache(maxsize=4096)
def skeleton(name: str) -> str:
    """What ``name`` looks like, reduced so that look-alikes compare equal: ``Tr0upe``, ``ТROUPE``
    (Cyrillic T) and ``𝐓𝐫𝐨𝐮𝐩𝐞`` all become ``troupe`` (spelled with "l" for every i-like letter)."""
    text = unicodedata.normalize("NFKC", name)
    text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    text = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    text = "".join(_latin(c) for c in text).casefold().translate(_STAND_INS)
    for pair, letter in _LOOK_ALIKE_PAIRS:
        text = text.replace(pair, letter)
    return text


def _words(name: str) -> list[str]:
    return re.findall(r"[^\W_]+", skeleton(name))


def impersonated(name: str, bot_names: Iterable[str] = (), refused_parts: Iterable[str] = ()) -> str | None:
    """Who a persona called ``name`` could be taken for, or None.

    ``bot_names``: the names the bot goes by on this platform; ``refused_parts``: words the platform
    refuses anywhere in a poster's name (Discord refuses "discord" and "clyde" in webhook names).
    """
    words = _words(name)
    if not words:
        return None
    joined = "".join(words)
    for bot in bot_names:
        bot_words = _words(bot)
        if bot_words and ("".join(bot_words) == joined or _contains(words, bot_words)):
            return f"the bot (it is called {bot} here)"
    for word in RESERVED_WORDS:
        if skeleton(word) in words or skeleton(word) == joined:
            return f"the platform or the people who run the channel (“{word}”)"
    for part in refused_parts:
        if skeleton(part) in joined:
            return f"the platform (it refuses “{part}” in the name of anyone who posts)"
    return None


def _contains(words: list[str], phrase: list[str]) -> bool:
    return any(words[i : i + len(phrase)] == phrase for i in range(len(words) - len(phrase) + 1))


def unshowable(name: str) -> str | None:
    """What in ``name`` would not show as written (markup, invisible or line-breaking characters), or None."""
    for char in name:
        if char in MARKUP_CHARACTERS:
            return f"“{literal(char)}”, which chat platforms read as formatting"
        category = unicodedata.category(char)
        if category in ("Cf", "Zl", "Zp", "Cc"):
            what = "a line break" if category in ("Zl", "Zp") or char in "\n\r\x85" else \
                "an invisible or direction-changing character"
            return f"{what} (U+{ord(char):04X})"
    return None


def name_refusal(name: str, bot_names: Iterable[str] = (), refused_parts: Iterable[str] = ()) -> str | None:
    """Why a persona may not be called ``name`` here, said so that the moderator knows what to change;
    None when the name is fine."""
    shown = literal(name)
    problem = unshowable(name)
    if problem is not None:
        return (f"the persona name “{shown}” contains {problem}. A name is shown in the bot's messages and "
                "as the poster's name: write it as plain words.")
    mistaken = impersonated(name, bot_names, refused_parts)
    if mistaken is not None:
        return (f"the persona name “{shown}” could be taken for {literal(mistaken)}, so the persona's words "
                "could pass for theirs. Give the persona another name.")
    return None
