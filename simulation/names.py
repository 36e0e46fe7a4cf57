"""What a name looks like: the *skeleton* that look-alike names share, and the key a world tells its
personas apart by.

A name is read by people, so two names that look the same are the same name: "Priya Nair",
"Priyа Nair" (with a Cyrillic а), "PRIYA NAIR" and "Priya  Nair" (two spaces) all show as Priya
Nair. The skeleton folds compatibility forms (fullwidth, mathematical letters), drops invisible
characters and accents, maps letters that look like Latin ones to them through Unicode's
confusables data (``confusable_homoglyphs``), folds case and reads the usual digit-for-letter
stand-ins as letters.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from confusable_homoglyphs import confusables

#: Signs that stand in for letters; every look-alike of "l" (``I``, ``|``, and the digit ``1``) is read as "l".
_STAND_INS = str.maketrans({"i": "l", "|": "l", "!": "l", "$": "s", "@": "a"})
#: Digits that stand in for letters.
DIGIT_STAND_INS = str.maketrans({"0": "o", "1": "l", "3": "e", "4": "a", "5": "s", "7": "t"})
_LOOK_ALIKE_PAIRS = (("rn", "m"), ("vv", "w"))
#: Digits written for the letters they resemble in a name ("Pr1ya", "L0ra"), without the i-for-l
#: reading of ``DIGIT_STAND_INS``.
_DIGITS_AS_LETTERS = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t"})

#: Characters that show as a blank or as nothing though they are neither format characters nor
#: combining accents: the combining grapheme joiner, Hangul fillers, Khmer's invisible vowels, the
#: braille blank. No name needs one.
BLANK_LETTERS = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u2800\u3164\uffa0")
#: Mongolian and Unicode variation selectors: they pick a character's look (an emoji's, a kanji's),
#: and a name may hold them.
VARIATION_SELECTORS = frozenset(
    "\u180b\u180c\u180d\u180f"
    + "".join(chr(c) for c in range(0xFE00, 0xFE10))
    + "".join(chr(c) for c in range(0xE0100, 0xE01F0))
)
#: What a name reads the same without.
INVISIBLE_LETTERS = BLANK_LETTERS | VARIATION_SELECTORS

_WORD = re.compile(r"[^\W_]+")


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
def skeleton(name: str, *, read_digits: bool = True, stand_ins: bool = True) -> str:
    """What ``name`` looks like, reduced so that look-alikes compare equal: ``Tr0upe``, ``ТROUPE``
    (Cyrillic T) and ``𝐓𝐫𝐨𝐮𝐩𝐞`` all become ``troupe`` (spelled with "l" for every i-like letter).

    ``read_digits=False`` leaves the digits as digits (``Tr0upe2`` gives ``tr0upe2``, one
    character for one with the skeleton), for whoever must tell a digit read as a letter from one
    that only pads a name. ``stand_ins=False`` leaves what only resembles a letter in some fonts
    (``i`` and ``l``, ``rn`` and ``m``, signs and digits) as it is: "Lisa" and "Ilsa", "Arnie" and
    "Amie" are different people's names, though each could pose as a reserved word."""
    text = unicodedata.normalize("NFKC", name)
    text = "".join(c for c in text if unicodedata.category(c) != "Cf" and c not in INVISIBLE_LETTERS)
    text = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    text = "".join(_latin(c) for c in text).casefold()
    if not stand_ins:
        return text
    text = text.translate(_STAND_INS)
    for pair, letter in _LOOK_ALIKE_PAIRS:
        text = text.replace(pair, letter)
    return text.translate(DIGIT_STAND_INS) if read_digits else text


def skeleton_words(name: str, *, read_digits: bool = True) -> list[str]:
    """The words of ``name``'s skeleton: runs of letters and digits, whatever separates them."""
    return _WORD.findall(skeleton(name, read_digits=read_digits))


@lru_cache(maxsize=4096)
def name_key(name: str) -> str:
    """What tells ``name`` apart from other names as people read it: the words of its skeleton
    (without the stand-ins, which would make "Lisa" and "Ilsa" one name), one space between each
    ("Priyа  Nair", with a Cyrillic а, and "priya-nair" give ``priya nair``). A name with no letter
    or digit (an emoji, say) is its case-folded self, spaces aside."""
    words = _WORD.findall(skeleton(name, read_digits=False, stand_ins=False).translate(_DIGITS_AS_LETTERS))
    return " ".join(words) or " ".join(unicodedata.normalize("NFKC", name).casefold().split())
